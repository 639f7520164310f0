"""The notes app."""

from django.apps import AppConfig


class NotesConfig(AppConfig):
    """The test project's only app."""

    name = "notes"
    default_auto_field = "django.db.models.BigAutoField"
