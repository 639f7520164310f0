"""Run by Django's test runner (``manage.py test notes``) in a test database it creates."""

from django.db import connection
from django.test import TestCase

from notes.models import Note


class NoteTests(TestCase):
    """The ORM over an IAM login, inside the test database."""

    def test_round_trip(self) -> None:
        """A saved note reads back, in the test database, as the IAM user."""
        Note.objects.create(text="hello")
        assert list(Note.objects.values_list("text", flat=True)) == ["hello"]
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_database(), current_user")
            dbname, user = cursor.fetchone()
        assert dbname.startswith("test_")
        assert user == connection.settings_dict["USER"]
