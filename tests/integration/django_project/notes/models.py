"""One model, enough for migrate, a round trip and the test runner."""

from django.db import models


class Note(models.Model):
    """A short text with its creation time."""

    text = models.CharField(max_length=200)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        app_label = "notes"
