"""One settings object for every process, read from the environment and `.env`."""

from datetime import time
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Secrets that ship in the repository so that `make run` works out of the box.
# They are refused outside development.
DEVELOPMENT_WEBHOOK_SECRET = "development-webhook-secret"
DEVELOPMENT_UNSUBSCRIBE_SECRET = "development-unsubscribe-secret"


class Settings(BaseSettings):
    """Everything a process needs to know about where it runs."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    environment: Literal["development", "production"] = "development"

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_task_queue: str = "lead-nurture"
    temporal_ui_url: str = "http://127.0.0.1:8233"

    # Unset means: run the embedded PostgreSQL server under `data_dir`.
    database_url: str | None = None
    embedded_postgres_port: int = 54329

    data_dir: Path = Path("var")
    journeys_dir: Path = Path("journeys")

    email_backend: Literal["outbox", "sendgrid"] = "outbox"
    sendgrid_api_key: SecretStr | None = None
    sendgrid_host: str = "https://api.sendgrid.com"
    email_from: str = "hello@example.com"
    email_from_name: str = "Lead Nurture"
    sales_queue_email: str = "sales@example.com"
    postal_address: str = "Example Ltd, 1 Example Street, Exampletown"
    sendgrid_timeout_seconds: float = 10.0
    # At most this many marketing emails per lead in any `email_frequency_days`
    # days, across journeys (0: no cap); a touch over the cap is deferred.
    email_frequency_cap: int = 3
    email_frequency_days: int = 7
    # No marketing email between these local times in the lead's time zone; a
    # touch that falls in them is deferred. Equal times (the default, so that a
    # demo or a test at night still sends): no quiet hours. For example 21:00
    # and 08:00.
    email_quiet_hours_start: time = time(0, 0)
    email_quiet_hours_end: time = time(0, 0)
    # The time zone of a lead that has none, or an unknown one.
    default_time_zone: str = "UTC"
    # Addresses that get every sales handoff besides the owner, comma-separated.
    sales_handoff_cc: str = ""
    # A Slack-compatible incoming webhook that hears of every handoff; unset:
    # email only.
    sales_chat_webhook_url: SecretStr | None = None

    webhook_host: str = "127.0.0.1"
    webhook_port: int = 8000
    webhook_public_url: str = "http://127.0.0.1:8000"
    webhook_secret: SecretStr = SecretStr(DEVELOPMENT_WEBHOOK_SECRET)
    unsubscribe_secret: SecretStr = SecretStr(DEVELOPMENT_UNSUBSCRIBE_SECRET)
    # The SendGrid Event Webhook's verification key, base64 as SendGrid shows it
    # (Mail Settings, Signed Event Webhook). Unset: the endpoint refuses events.
    sendgrid_webhook_public_key: str | None = None
    webhook_max_body_bytes: int = 1_048_576
    # How far a signed timestamp may be from now before it counts as stale.
    webhook_signature_tolerance_seconds: int = 300
    # The journey an event may start for a lead that has none; its entry rule
    # names the event types that may, and whether a finished journey re-enrols.
    entry_journey: str = "welcome"
    # The relay delivers events stored while Temporal was unreachable.
    relay_interval_seconds: float = 5.0
    relay_batch_size: int = 100
    temporal_signal_timeout_seconds: float = 5.0
    # A click within this long after delivery, on a message whose links got at
    # least `scanner_click_min_links` distinct clicks in that time, is a link
    # scanner's. Such suspects wait `scanner_click_settle_seconds` for the rest
    # of the burst before they are delivered.
    scanner_click_window_seconds: int = 120
    scanner_click_min_links: int = 3
    scanner_click_settle_seconds: float = 60.0

    worker_activity_slots: int = 32
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _refuse_development_secrets_in_production(self) -> "Settings":
        if self.environment != "production":
            return self
        placeholders = {
            "WEBHOOK_SECRET": (self.webhook_secret, DEVELOPMENT_WEBHOOK_SECRET),
            "UNSUBSCRIBE_SECRET": (
                self.unsubscribe_secret,
                DEVELOPMENT_UNSUBSCRIBE_SECRET,
            ),
        }
        for name, (secret, placeholder) in placeholders.items():
            if secret.get_secret_value() == placeholder:
                message = f"{name} must be set to a real secret in production."
                raise ValueError(message)
        if self.database_url is None:
            message = "DATABASE_URL must be set in production."
            raise ValueError(message)
        return self

    @property
    def outbox_dir(self) -> Path:
        return self.data_dir / "outbox"

    @property
    def postgres_dir(self) -> Path:
        return self.data_dir / "postgres"

    @property
    def temporal_db_file(self) -> Path:
        return self.data_dir / "temporal.db"


@lru_cache
def get_settings() -> Settings:
    return Settings()
