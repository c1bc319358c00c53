"""The `[schedule]` and `[maintenance]` crons checked the way `newsflow serve` will meet them, for every command
(Prefect's own check).

Settings stay Prefect-free, so the CLI calls this after loading them, and only for a cron other than the default:
importing Prefect costs about a second that commands which never schedule anything should not pay.
"""

from __future__ import annotations

from pathlib import Path

from flows.core.sections import MaintenanceSettings
from flows.core.settings import ConfigError, ScheduleSettings, Settings


def check_cron(settings: Settings, config: Path | str) -> None:
    """Refuse (ConfigError, naming the file and key) a cron Prefect would refuse at `serve`: its croniter's
    syntax, without random (R) or hashed (H) fields."""
    crons = {"schedule.cron": (settings.schedule.cron, ScheduleSettings.model_fields["cron"].default),
             "maintenance.cron": (settings.maintenance.cron, MaintenanceSettings.model_fields["cron"].default)}
    for key, (cron, default) in crons.items():
        if cron == default:
            continue
        try:
            from prefect._internal.schemas.validators import validate_cron_string
        except ImportError:  # a Prefect that moved it: `serve` still checks, as before
            return
        try:
            validate_cron_string(cron)
        except ValueError as exc:
            raise ConfigError(f"{config}: {key}: {exc}") from None
