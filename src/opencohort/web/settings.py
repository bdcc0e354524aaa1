"""Settings of the web app, read from ``OPENCOHORT_*`` environment variables and validated."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from opencohort.registry.auth import DEV_SECRET

MIN_SECRET_LENGTH = 32


class Settings(BaseSettings):
    """Where the registry is, which environment this is, and the secret API tokens are keyed by.

    Outside development the secret must be set (``OPENCOHORT_SECRET_KEY``) to something
    other than the built-in development value, at least 32 characters long; ``registry token
    create`` must see the same value.
    """

    model_config = SettingsConfigDict(env_prefix="OPENCOHORT_", extra="ignore")

    registry_url: str
    environment: Literal["development", "test", "production"] = "development"
    secret_key: SecretStr = SecretStr(DEV_SECRET)
    #: Requests one server process handles at once (each on its own thread and database
    #: connection); more wait in line rather than fail.
    threads: int = Field(default=16, ge=1, le=256)

    @model_validator(mode="after")
    def _no_default_secret(self) -> Settings:
        if self.environment == "development":
            return self
        secret = self.secret_key.get_secret_value()
        if secret == DEV_SECRET or len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"environment {self.environment} needs OPENCOHORT_SECRET_KEY set to a secret of "
                f"at least {MIN_SECRET_LENGTH} characters, not the development default"
            )
        return self
