"""Settings read from ``GROUPCLOUD_*`` environment variables.

One object, built once per process, so that the server, the worker and the CLI
agree on where the database lives without passing paths around.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Configuration of a groupcloud process (server, CLI or benchmark)."""

    model_config = SettingsConfigDict(env_prefix="GROUPCLOUD_", extra="ignore")

    data_dir: Path = Field(
        default=Path(".groupcloud"),
        description="Directory of the embedded SQLite database (created on first use).",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; overrides the embedded SQLite database, "
        "e.g. postgresql+psycopg://user@host:5432/groupcloud.",
    )
    url: str = Field(
        default="http://127.0.0.1:8080",
        description="Where CLI client commands reach the API.",
    )
    token: str | None = Field(default=None, description="API token used by CLI client commands.")
    placement_seed: int = Field(
        default=0, description="Seed for placement tie-breaking, so runs repeat exactly."
    )
    placement_policy: str = Field(
        default="fgd-fluid",
        description="How packing requests choose among the hosts that fit: fgd-fluid (the "
        "fewest GPUs wasted by fragmentation, CPU or memory, learned from the pool's "
        "allocations), fgd, best-fit, dot-product, gpu-packing or pack (the fullest host).",
    )
    index_refresh_s: float = Field(
        default=5.0,
        ge=0,
        description="Seconds after which a process reloads its in-memory capacity index from "
        "the database even if nothing told it to (other processes' claims).",
    )
    claim_retries: int = Field(
        default=16,
        ge=1,
        description="How many placements a claim tries when another writer took the capacity "
        "first before it answers no_capacity.",
    )
    priority_cache_s: float = Field(
        default=2.0,
        ge=0,
        description="Seconds a process may reuse a project's default priority; a change takes "
        "effect at once in the process that makes it, and within this time in the others. "
        "(Tokens are checked on every request: a revocation holds at once everywhere.)",
    )
    db_pool_size: int = Field(default=10, ge=1, description="Connections per process (PostgreSQL).")
    max_body_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        description="Largest request body the API reads (413 above it); the largest legitimate "
        "one is a batch of 10,000 activity events, about 1.5 MB.",
    )
    sqlite_busy_timeout_ms: int = Field(
        default=30_000, ge=0, description="How long an SQLite writer waits for the write lock."
    )

    worker_interval_s: float = Field(
        default=0.5,
        gt=0,
        description="Seconds between two rounds of the worker (scheduler cycle, reclaims, "
        "leases, idle reclaim); a release or a queued request in the same process wakes it.",
    )
    reclaim_notice_s: float = Field(
        default=300.0,
        ge=0,
        description="Notice a borrowed allocation gets between the reclaim notice and its "
        "release when its lender needs the capacity back (0: at the next worker round).",
    )
    reclaim_backoff_s: float = Field(
        default=60.0,
        ge=0,
        description="Wait before a reclaimed allocation may be admitted again; doubles with "
        "every further reclaim of the same allocation.",
    )
    reclaim_backoff_max_s: float = Field(
        default=3600.0, ge=0, description="Upper bound of the reclaim backoff."
    )
    lease_warnings_s: list[int] = Field(
        default=[3600, 600],
        description="Seconds before a lease ends at which a lease_warning event is written "
        "(JSON list, e.g. [86400, 3600]).",
    )
    idle_threshold: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Utilisation (0-1) below which a reported allocation counts as idle.",
    )
    idle_window_s: float = Field(
        default=3600.0,
        ge=0,
        description="How long an allocation must stay idle before it is flagged.",
    )
    idle_grace_s: float = Field(
        default=3600.0,
        ge=0,
        description="Time between the idle flag (owner notified) and the release, unless "
        "the allocation becomes busy again or is marked keep.",
    )
    ip_quarantine_s: float = Field(
        default=300.0,
        ge=0,
        description="How long a released IP address stays held before anyone can get it "
        "again, so that stale DNS or ARP entries cannot reach the next tenant.",
    )

    analytics_secret: SecretStr | None = Field(
        default=None,
        description="Group secret of the person keys: person_key = HMAC-SHA256(secret, "
        "person_id). Needed to ingest activity events (not to report); at least 32 characters; "
        "keep it out of the data directory.",
    )
    analytics_k: int = Field(
        default=10,
        ge=1,
        description="Smallest segment an analytics report shows: counts of 1..k-1 persons are "
        "suppressed.",
    )
    analytics_target_mau: int = Field(
        default=15_000_000, ge=1, description="Integrated MAU target that reports track."
    )
    analytics_batch_rows: int = Field(
        default=200_000,
        ge=1,
        description="Events per ingestion transaction (and at most Parquet files per month "
        "per transaction): larger batches load faster and hold more memory.",
    )

    analytics_nats_servers: str = Field(
        default="nats://127.0.0.1:4222",
        description="NATS servers of the activity-event stream (comma-separated URLs) that "
        "`groupcloud mau consume` reads.",
    )
    analytics_nats_stream: str = Field(
        default="ANALYTICS",
        description="JetStream stream of activity events; created (file storage, limits "
        "retention) with analytics_nats_subject when it does not exist.",
    )
    analytics_nats_subject: str = Field(
        default="analytics.events.>",
        description="Subject the consumer filters on (and the subject of a stream it creates).",
    )
    analytics_nats_durable: str = Field(
        default="groupcloud-mau",
        description="Durable pull consumer name: a restarted consumer resumes where the last "
        "acknowledged message left off.",
    )
    analytics_nats_batch: int = Field(
        default=1000,
        ge=1,
        description="Messages fetched and loaded per ingestion transaction; they are acked "
        "only after it committed.",
    )
    analytics_nats_ack_wait_s: float = Field(
        default=60.0,
        gt=0,
        description="Seconds JetStream waits for the ack of a delivered message before it "
        "delivers it again (set when the durable consumer is created).",
    )

    analytics_capacity_model: Path | None = Field(
        default=None,
        description="Capacity model file (YAML or JSON, see examples/capacity-model.yaml) of "
        "capacity plans and the KPI scorecard; unset: the built-in model.",
    )
    analytics_kpis: Path | None = Field(
        default=None,
        description="KPI definitions file (YAML or JSON, see examples/kpis.yaml) of the "
        "scorecard; unset: the built-in definitions.",
    )

    zone_rules: Path | None = Field(
        default=None,
        description="YAML file of the operator's placement rules for regulated data, added "
        "to the built-in ones (docs/zones.md); read at start-up, an invalid file stops it.",
    )

    prices: Path | None = Field(
        default=None,
        description="CSV price catalog (provider, region, instance type, vCPU, memory, GPUs, "
        "KRW per hour; docs/providers.md) replacing the shipped one; read at start-up.",
    )
    provider_timeout_s: float = Field(
        default=15.0,
        gt=0,
        description="Seconds one provider call may take before it counts as failed.",
    )
    provider_attempts: int = Field(
        default=3, ge=1, description="Attempts of a provider call before failover."
    )
    zone_block_s: float = Field(
        default=30.0,
        ge=0,
        description="Failover: how long an external zone whose provider failed takes no new "
        "instances; doubles with every failure in a row.",
    )
    zone_block_max_s: float = Field(
        default=900.0, ge=0, description="Upper bound of an external zone's block."
    )
    reconcile_interval_s: float = Field(
        default=10.0,
        gt=0,
        description="Seconds between two reconciliations of the providers' instances with the "
        "database (orphans deleted, vanished instances failed).",
    )

    dbaas_postgres_url: SecretStr | None = Field(
        default=None,
        description="The PostgreSQL server behind the catalog's postgresql service: a libpq "
        "URL of a superuser (e.g. postgresql://postgres@db.internal:5432/postgres). Unset: "
        "postgresql services are refused (backend_unavailable).",
    )
    dbaas_public_host: str | None = Field(
        default=None,
        max_length=253,
        description="The host name tenants are given in binding URLs, when it differs from "
        "the admin URL's (a load balancer, a DNS name).",
    )
    dbaas_public_port: int | None = Field(
        default=None, ge=1, le=65535, description="The port given in binding URLs."
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Fernet key sealing bindings' credentials at rest (32 bytes, url-safe "
        "base64; `groupcloud secret-key` makes one). Needed with dbaas_postgres_url.",
    )
    secret_old_keys: list[SecretStr] = Field(
        default_factory=list,
        description="Earlier keys that still open what they sealed (a key rotation).",
    )
    service_timeout_s: float = Field(
        default=600.0,
        ge=0,
        description="How long a service's backend may stay unreachable while it is "
        "provisioned before the service fails (and every part is released).",
    )
    service_retry_s: float = Field(
        default=15.0,
        ge=0,
        description="Seconds after which the worker takes over a service operation that has "
        "not finished (its process crashed or the backend was unreachable).",
    )

    @field_validator("placement_policy")
    @classmethod
    def _known_policy(cls, name: str) -> str:
        from groupcloud.placement.policies import SERVER_POLICIES  # numpy only if needed

        if name not in SERVER_POLICIES:
            raise ValueError(f"not one of {', '.join(SERVER_POLICIES)}")
        return name

    @model_validator(mode="after")
    def _key_for_credentials(self) -> Settings:
        if self.dbaas_postgres_url is not None and self.secret_key is None:
            raise ValueError(
                "GROUPCLOUD_DBAAS_POSTGRES_URL needs GROUPCLOUD_SECRET_KEY (a Fernet key that "
                "seals the bindings' credentials; `groupcloud secret-key` makes one)"
            )
        for key in (self.secret_key, *self.secret_old_keys):
            if key is not None:
                from cryptography.fernet import Fernet  # only where a key is configured

                try:
                    Fernet(key.get_secret_value())
                except (ValueError, TypeError):
                    raise ValueError(
                        "GROUPCLOUD_SECRET_KEY (or an old key) is not a Fernet key: 32 bytes, "
                        "url-safe base64 (`groupcloud secret-key` makes one)"
                    ) from None  # the cause would quote the key
        return self

    @property
    def resolved_database_url(self) -> str:
        """The database URL in effect: the explicit one, or the embedded SQLite file."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'groupcloud.db').as_posix()}"
