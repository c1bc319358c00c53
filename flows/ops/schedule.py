"""The `[schedule]` cron checked the way `newsflow serve` will meet it, for every command (Prefect's own check).

Settings stay Prefect-free, so the CLI calls this after loading them, and only for a cron other than the default:
importing Prefect costs about a second that commands which never schedule anything should not pay.
"""

from __future__ import annotations

from pathlib import Path

from flows.core.settings import ConfigError, ScheduleSettings, Settings


def check_cron(settings: Settings, config: Path | str) -> None:
    """Refuse (ConfigError, naming the file) a cron Prefect would refuse at `serve`: its croniter's syntax, without
    random (R) or hashed (H) fields."""
    cron = settings.schedule.cron
    if cron == ScheduleSettings.model_fields["cron"].default:
        return
    try:
        from prefect._internal.schemas.validators import validate_cron_string
    except ImportError:  # a Prefect that moved it: `serve` still checks, as before
        return
    try:
        validate_cron_string(cron)
    except ValueError as exc:
        raise ConfigError(f"{config}: schedule.cron: {exc}") from None
