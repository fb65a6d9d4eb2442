"""Quality services: the active fraud model, training it, and operators' review decisions."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from aiqleads.kit.clock import Clock
from aiqleads.quality import fraud
from aiqleads.quality.models import LeadReview, ModelVersion

FRAUD_MODEL = "fraud"


async def active_fraud_model(session: AsyncSession) -> fraud.FraudModel:
    """The newest active trained model, else the one shipped in the package."""
    row = (
        await session.execute(
            sa.select(ModelVersion)
            .where(ModelVersion.name == FRAUD_MODEL, ModelVersion.active.is_(True))
            .order_by(ModelVersion.version.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    if row is None:
        return fraud.bootstrap_model()
    return fraud.FraudModel.from_parameters(row.version, row.features, row.parameters)


async def review_labels(session: AsyncSession) -> tuple[list[dict[str, float]], list[int]]:
    """Every operator decision as a training row: reject = fraud (1), approve = genuine (0)."""
    rows = (await session.execute(sa.select(LeadReview).order_by(LeadReview.created_at))).scalars()
    features, labels = [], []
    for review in rows:
        features.append(review.features)
        labels.append(1 if review.decision == "reject" else 0)
    return features, labels


async def save_model(
    session: AsyncSession,
    model_rows: Sequence[dict[str, float]],
    labels: Sequence[int],
    clock: Clock,
    *,
    source: str,
    force: bool = False,
) -> ModelVersion:
    """Train on `model_rows`/`labels` and store it as the next active version. Raises
    fraud.TrainingRefused, storing nothing, when the examples are too few or (unless `force`)
    the model's held-out ROC AUC is below fraud.MIN_ROC_AUC."""
    latest = (
        await session.execute(
            sa.select(sa.func.max(ModelVersion.version)).where(ModelVersion.name == FRAUD_MODEL)
        )
    ).scalar_one()
    version = (latest or 0) + 1
    model, metrics = fraud.train(model_rows, labels, version)
    if metrics["roc_auc"] < fraud.MIN_ROC_AUC and not force:
        raise fraud.TrainingRefused(
            f"the new model's held-out ROC AUC is {metrics['roc_auc']}, below "
            f"{fraud.MIN_ROC_AUC}; the active model stays (--force to activate it anyway)"
        )
    metrics["training_source"] = source
    await session.execute(
        sa.update(ModelVersion).where(ModelVersion.name == FRAUD_MODEL).values(active=False)
    )
    row = ModelVersion(
        id=uuid.uuid4(),
        name=FRAUD_MODEL,
        version=version,
        trained_at=clock.now(),
        features=list(model.features),
        parameters=model.parameters(),
        metrics=metrics,
        training_rows=len(labels),
        active=True,
    )
    session.add(row)
    await session.flush()
    return row
