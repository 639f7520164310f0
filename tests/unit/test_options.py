"""The kit's options: declared once (IamOptions, ConnectOptions), validated once, shown once."""

from __future__ import annotations

import inspect
from typing import Any

import attrs
import pytest

import rdsiamkit
from rdsiamkit._options import (
    OPTION_NAMES,
    ConnectOptions,
    IamOptions,
    async_provider,
    sync_provider,
)
from rdsiamkit.errors import ConfigurationError
from rdsiamkit.tokens import AsyncTokenProvider, TokenProvider

HOST = "demo.cluster-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com"


def test_the_typed_dict_and_the_value_declare_the_same_options() -> None:
    """IamOptions and ConnectOptions name the same options with the same annotations."""
    fields = attrs.fields(ConnectOptions)
    assert tuple(f.name for f in fields) == OPTION_NAMES
    assert set(IamOptions.__optional_keys__) == set(OPTION_NAMES)
    for field in fields:
        hint = IamOptions.__annotations__[field.name]
        assert getattr(hint, "__forward_arg__", hint) == field.type, field.name


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"session": object(), "profile": "dev"}, "session= or profile="),
        ({"token_provider": TokenProvider(), "profile": "dev"}, "token_provider= or session"),
        ({"region": 5}, "region must be"),
        ({"region": ""}, "region must be"),
        ({"token_port": "abc"}, "token_port must be a TCP port"),
        ({"token_port": True}, "token_port must be a TCP port"),
        ({"max_attempts": 0}, "max_attempts must be at least 1"),
        ({"max_attempts": True}, "max_attempts must be at least 1"),
        ({"retry_budget": -1}, "retry_budget must be"),
        ({"insecure_skip_tls_verify": "yes"}, "insecure_skip_tls_verify must be"),
        ({"token_provider": "not a provider"}, "token_provider must be"),
    ],
)
def test_each_wrong_option_is_named(options: dict[str, Any], message: str) -> None:
    """A wrong value or a conflicting pair is a ConfigurationError naming the option."""
    with pytest.raises(ConfigurationError, match=message):
        ConnectOptions.of(**options)


def test_from_kwargs_takes_only_the_kits_options() -> None:
    """Kit options leave the keywords; libpq's and psycopg's stay; text ports become ints."""
    kwargs: dict[str, Any] = {"host": HOST, "region": "eu-west-1", "token_port": "6543"}
    kwargs["autocommit"] = True
    options = ConnectOptions.from_kwargs(kwargs)
    assert kwargs == {"host": HOST, "autocommit": True}
    assert (options.region, options.token_port, options.max_attempts) == ("eu-west-1", 6543, 3)
    assert options.as_kwargs() == {"region": "eu-west-1", "token_port": 6543}


def test_one_provider_per_profile_and_async_faces_share_it() -> None:
    """The default provider is shared per profile; its async face wraps that same provider."""
    sync = sync_provider(None, None, "rdsiamkit-test-profile")
    assert sync_provider(None, None, "rdsiamkit-test-profile") is sync
    face = async_provider(None, None, "rdsiamkit-test-profile")
    assert face.sync is sync and async_provider(None, None, "rdsiamkit-test-profile") is face


def test_an_async_provider_is_refused_by_sync_entry_points() -> None:
    """connect() needs a TokenProvider: an AsyncTokenProvider is named, not failed on later."""
    with pytest.raises(ConfigurationError, match="AsyncTokenProvider"):
        ConnectOptions(token_provider=AsyncTokenProvider(TokenProvider())).sync_provider()
    with pytest.raises(ConfigurationError, match="AsyncTokenProvider"):
        rdsiamkit.connect(host=HOST, user="app", token_provider=AsyncTokenProvider(TokenProvider()))


@pytest.mark.parametrize(
    ("entry", "absent"),
    [
        (rdsiamkit.connect, set()),
        (rdsiamkit.connect_async, set()),
        (rdsiamkit.create_pool, {"max_attempts", "retry_budget"}),
        (rdsiamkit.create_async_pool, {"max_attempts", "retry_budget"}),
    ],
)
def test_entry_points_show_every_option_in_their_signature(entry: Any, absent: set[str]) -> None:
    """help() and IPython see each kit option, typed and with its default, read from _options."""
    params = inspect.signature(entry).parameters
    assert set(OPTION_NAMES) - absent <= set(params)
    assert not absent & set(params)
    assert params["max_lifetime" if absent else "max_attempts"].default in (1800.0, 3)
    assert params["region"].annotation == "str | None"
    assert list(params)[-1] == "kwargs"


def test_a_wrongly_typed_option_fails_before_any_connection() -> None:
    """connect(region=5) is a ConfigurationError at once, not a botocore error later."""
    with pytest.raises(ConfigurationError, match="region must be"):
        rdsiamkit.connect(host=HOST, user="app", region=5)
