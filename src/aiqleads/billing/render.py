"""Invoices and receipts as HTML (Jinja2, autoescaped) and PDF (fpdf2)."""

from __future__ import annotations

from fpdf import FPDF
from fpdf.enums import XPos, YPos
from jinja2 import Environment, PackageLoader, select_autoescape

from aiqleads.accounts.models import User
from aiqleads.billing.models import Invoice, InvoiceKind, Provider
from aiqleads.billing.service import money

_templates = Environment(
    loader=PackageLoader("aiqleads.billing", "templates"),
    autoescape=select_autoescape(["html"]),
)

PAID_WITH = {
    Provider.CREDITS: "credits",
    Provider.STRIPE: "card, by Stripe",
    Provider.MANUAL: "transfer",
}


def title_of(invoice: Invoice) -> str:
    return "receipt" if invoice.kind is InvoiceKind.PURCHASE else "invoice"


def invoice_html(invoice: Invoice, user: User) -> str:
    return _templates.get_template("invoice.html").render(
        invoice=invoice,
        user=user,
        title=title_of(invoice),
        paid_with=PAID_WITH[invoice.provider],
        money=money,
    )


def _latin1(text: str) -> str:
    """The PDF's core font speaks Latin-1; anything else is shown as '?'."""
    return text.encode("latin-1", "replace").decode("latin-1")


def invoice_pdf(invoice: Invoice, user: User) -> bytes:
    pdf = FPDF(format="Letter")
    pdf.set_title(f"AIQLeads {title_of(invoice)} {invoice.number}")
    pdf.set_creation_date(invoice.created_at)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, f"AIQLeads {title_of(invoice)}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", size=10)
    head = [
        f"{invoice.number} ({invoice.status.value})",
        f"Issued {invoice.created_at:%Y-%m-%d %H:%M} UTC",
    ]
    if invoice.paid_at:
        head.append(f"Paid {invoice.paid_at:%Y-%m-%d %H:%M} UTC ({PAID_WITH[invoice.provider]})")
    head += ["", f"Billed to {user.name} <{user.email}>", "", invoice.description]
    for text in head:
        pdf.cell(0, 6, _latin1(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(4)
    widths = (110, 15, 30, 30)
    pdf.set_font("Helvetica", "B", 10)
    for width, text, align in zip(
        widths, ("Description", "Qty", "Unit", "Amount"), "LRRR", strict=True
    ):
        pdf.cell(width, 7, text, border="B", align=align)
    pdf.ln()
    pdf.set_font("Helvetica", size=10)
    for item in invoice.lines:
        cells = (
            _latin1(str(item["description"]))[:70],
            str(item["quantity"]),
            money(int(item["unit_cents"])),
            money(int(item["amount_cents"])),
        )
        for width, text, align in zip(widths, cells, "LRRR", strict=True):
            pdf.cell(width, 7, text, align=align)
        pdf.ln()
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(sum(widths[:3]), 8, "Total", border="T")
    pdf.cell(widths[3], 8, money(invoice.amount_cents), border="T", align="R")
    pdf.ln(12)
    pdf.set_font("Helvetica", size=8)
    pdf.cell(0, 5, "Amounts in US dollars. One credit buys one cent of a lead's price.")
    return bytes(pdf.output())
