"""Demo datasets for ``seed_demo``: a raw source registered by URI and a training set uploaded as CSV.

Safe to run again: existing datasets are reused, and the versions are deterministic (a fixed hash, a CSV
generated from a fixed seed), so a second run gets the same versions back instead of new ones.
"""

import csv
import hashlib
import io
import random

from django.core.files.base import ContentFile

from governance.accounts.access import Principal
from governance.accounts.models import Project, User
from governance.provenance.models import Dataset, DatasetVersion
from governance.provenance.services import dataset_create, dataset_version_register, dataset_version_upload

SOURCE_URI = "s3://fraud-raw/transactions/2026-10.parquet"
SOURCE_SHA256 = hashlib.sha256(b"demo: fraud-raw/transactions/2026-10.parquet").hexdigest()
TRAINING_ROWS = 500
MERCHANT_CATEGORIES = ["grocery", "electronics", "travel", "fuel", "restaurants", "gaming", "pharmacy"]
COUNTRIES = ["DE", "FR", "NL", "ES", "IT", "PL", "US", "GB"]


def training_csv(rows: int = TRAINING_ROWS, seed: int = 2026) -> bytes:
    """amount (float), merchant_category, country (strings), hour, is_fraud (integers); about 3% fraud,
    more of it at night, abroad and in a few categories."""
    rng = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["amount", "merchant_category", "country", "hour", "is_fraud"])
    for _ in range(rows):
        category = rng.choice(MERCHANT_CATEGORIES)
        country = rng.choices(COUNTRIES, weights=[30, 15, 10, 10, 10, 8, 10, 7])[0]
        hour = rng.randrange(24)
        amount = round(rng.lognormvariate(3.5, 1.0), 2)
        risk = 0.01 + 0.04 * (hour < 6) + 0.03 * (country in ("US", "GB")) + 0.03 * (category in ("gaming", "travel"))
        writer.writerow([f"{amount:.2f}", category, country, hour, int(rng.random() < risk)])
    return out.getvalue().encode()


def _dataset(actor: Principal, project: Project, namespace: str, name: str, **fields) -> Dataset:
    existing = Dataset.objects.filter(project=project, namespace=namespace, name=name).first()
    return existing or dataset_create(actor=actor, project=project, namespace=namespace, name=name, **fields)


def seed_datasets(project: Project, engineer: User) -> list[DatasetVersion]:
    """Register the demo's two dataset versions as ``engineer`` (an ML engineer of ``project``):
    ``[raw transactions (by URI), training set (uploaded)]``."""
    actor = Principal(engineer)
    raw = _dataset(
        actor,
        project,
        "s3://fraud-raw",
        "transactions",
        description="Card transactions as exported monthly by the payment processor.",
        license="Proprietary (processor data-sharing agreement)",
        classification="confidential",
        contains_pii=True,
        pii_justification="Card holder country and merchant are needed to detect cross-border fraud; card "
        "numbers are tokenised before export.",
    )
    source, _ = dataset_version_register(
        actor=actor,
        dataset=raw,
        uri=SOURCE_URI,
        sha256=SOURCE_SHA256,
        version="2026-10",
        row_count=1_284_511,
        schema=[
            {"name": "transaction_id", "type": "string"},
            {"name": "card_token", "type": "string"},
            {"name": "amount", "type": "float"},
            {"name": "merchant_category", "type": "string"},
            {"name": "country", "type": "string"},
            {"name": "occurred_at", "type": "datetime"},
            {"name": "is_fraud", "type": "integer"},
        ],
        datasheet={
            "motivation": "Source of every fraud model's training and reference data.",
            "collection_process": "Nightly export from the processor, one file per month.",
        },
    )
    training = _dataset(
        actor,
        project,
        f"tollgate://{project.slug}",
        "training-set",
        description="Features derived from the October transactions: amount, category, country, hour.",
        license="Internal use",
        classification="internal",
    )
    upload, _ = dataset_version_upload(
        actor=actor,
        dataset=training,
        file=ContentFile(training_csv(), name="training-2026-10.csv"),
        version="2026-10",
        datasheet={
            "motivation": "Training data of the fraud scoring model.",
            "composition": f"{TRAINING_ROWS} transactions, about 3% labelled fraud; no card tokens.",
            "collection_process": "Sampled from s3://fraud-raw/transactions 2026-10, card tokens dropped.",
            "known_biases": "Few transactions from small merchants; labels lag chargebacks by up to 60 days.",
        },
    )
    return [source, upload]
