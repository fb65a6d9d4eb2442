"""Notifications: in-app messages and e-mails, each as the user's preferences allow."""
