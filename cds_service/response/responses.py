"""CDS Hooks 2.0 response model: Card, Link, Suggestion, Action, SystemAction, Response.

Each type checks the rules the spec and Inferno's CRD server tests put on it when it is built, so a
response that violates them cannot be serialised at all:

- ``summary`` is required and shorter than 140 characters;
- cards and suggestions always carry a ``uuid`` (CRD resp-3; feedback refers to cards by it);
- a card with suggestions always has ``selectionBehavior`` (``at-most-one`` unless told otherwise);
- links are absolute URLs, ``appContext`` only on ``smart`` links;
- every action has a ``description``; ``create``/``update`` carry a resource, ``delete`` a ``resourceId``.

``as_json()`` writes camelCase CDS Hooks JSON without null or empty values (CH2 §Use of JSON); the one
sanctioned empty value is ``"cards": []``. Resources and extensions are passed through unchanged: an
``update`` must return the client's resource exactly as sent, apart from what we deliberately add.
"""

from __future__ import annotations

import uuid as uuid_module
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

SUMMARY_LIMIT = 140  # summary length must stay below this (Inferno errors at 140)
INDICATORS = ("info", "warning", "critical")
SELECTION_BEHAVIORS = ("at-most-one", "any")
ACTION_TYPES = ("create", "update", "delete")
LINK_TYPES = ("absolute", "smart")
# CRD 2.2 card-type code system for Card.source.topic (CRD resp-5).
CARD_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/cdshooks-card-type"


def _new_uuid() -> str:
    return str(uuid_module.uuid4())


def _compact(values: dict[str, Any]) -> dict[str, Any]:
    """Drop members whose value is None or empty (``""``, ``[]``, ``{}``); False and 0 are kept."""
    return {key: value for key, value in values.items() if value is not None and value != "" and value != []
            and value != {}}


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _is_absolute_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("https", "http") and bool(parts.hostname)


@dataclass(frozen=True)
class Coding:
    code: str
    system: str
    display: str | None = None

    def __post_init__(self) -> None:
        _require(bool(self.code) and bool(self.system), "a Coding needs code and system")

    def as_json(self) -> dict:
        return _compact({"code": self.code, "system": self.system, "display": self.display})


@dataclass(frozen=True)
class Source:
    label: str
    topic: Coding | None = None
    url: str | None = None
    icon: str | None = None

    def __post_init__(self) -> None:
        _require(bool(self.label), "Source.label is required")
        for name in ("url", "icon"):
            value = getattr(self, name)
            _require(value is None or _is_absolute_url(value), f"Source.{name} must be an absolute URL")

    def as_json(self) -> dict:
        return _compact({"label": self.label, "url": self.url, "icon": self.icon,
                         "topic": self.topic.as_json() if self.topic else None})


@dataclass(frozen=True)
class Link:
    label: str
    url: str
    type: str = "absolute"
    app_context: str | None = None
    autolaunchable: bool | None = None

    def __post_init__(self) -> None:
        _require(bool(self.label), "Link.label is required")
        _require(self.type in LINK_TYPES, f"Link.type must be one of {LINK_TYPES}")
        _require(_is_absolute_url(self.url), "Link.url must be an absolute URL")
        _require(self.app_context is None or self.type == "smart", "Link.appContext is only for smart links")

    def as_json(self) -> dict:
        return _compact({"label": self.label, "url": self.url, "type": self.type, "appContext": self.app_context,
                         "autolaunchable": self.autolaunchable})


@dataclass(frozen=True)
class Action:
    """A change the client applies: ``create`` or ``update`` with the whole ``resource``, ``delete`` by
    ``resource_id`` (``Type/id``)."""

    type: str
    description: str
    resource: dict | None = None
    resource_id: str | None = None

    def __post_init__(self) -> None:
        _require(self.type in ACTION_TYPES, f"Action.type must be one of {ACTION_TYPES}")
        _require(bool(self.description), "Action.description is required")
        if self.type == "delete":
            _require(bool(self.resource_id), "a delete action needs resource_id")
        else:
            _require(isinstance(self.resource, dict) and isinstance(self.resource.get("resourceType"), str),
                     f"a {self.type} action needs a FHIR resource")

    def as_json(self) -> dict:
        return _compact({"type": self.type, "description": self.description, "resource": self.resource,
                         "resourceId": self.resource_id})


@dataclass(frozen=True)
class SystemAction(Action):
    """An action the client applies without showing a card (``Response.systemActions``); CRD
    coverage-information is an ``update`` of the draft order carrying the coverage extension."""


@dataclass(frozen=True)
class Suggestion:
    label: str
    actions: tuple[Action, ...] = ()
    is_recommended: bool | None = None
    uuid: str = field(default_factory=_new_uuid)

    def __post_init__(self) -> None:
        _require(bool(self.label), "Suggestion.label is required")
        _require(bool(self.uuid), "Suggestion.uuid is required")

    def as_json(self) -> dict:
        return _compact({"label": self.label, "uuid": self.uuid, "isRecommended": self.is_recommended,
                         "actions": [action.as_json() for action in self.actions]})


@dataclass(frozen=True)
class Card:
    summary: str
    indicator: str
    source: Source
    detail: str | None = None
    suggestions: tuple[Suggestion, ...] = ()
    selection_behavior: str | None = None
    override_reasons: tuple[Coding, ...] = ()
    links: tuple[Link, ...] = ()
    extension: dict | None = None
    uuid: str = field(default_factory=_new_uuid)

    def __post_init__(self) -> None:
        _require(bool(self.summary) and len(self.summary) < SUMMARY_LIMIT,
                 f"Card.summary must be 1 to {SUMMARY_LIMIT - 1} characters")
        _require(self.indicator in INDICATORS, f"Card.indicator must be one of {INDICATORS}")
        _require(bool(self.uuid), "Card.uuid is required")
        _require(self.selection_behavior is None or self.selection_behavior in SELECTION_BEHAVIORS,
                 f"Card.selection_behavior must be one of {SELECTION_BEHAVIORS}")
        _require(all(reason.display for reason in self.override_reasons), "override reasons need a display")
        if self.suggestions and self.selection_behavior is None:
            object.__setattr__(self, "selection_behavior", "at-most-one")
        if self.selection_behavior == "at-most-one":
            _require(sum(bool(s.is_recommended) for s in self.suggestions) <= 1,
                     "at most one suggestion may be recommended with selection_behavior at-most-one")

    def as_json(self) -> dict:
        return _compact({
            "uuid": self.uuid,
            "summary": self.summary,
            "detail": self.detail,
            "indicator": self.indicator,
            "source": self.source.as_json(),
            "suggestions": [suggestion.as_json() for suggestion in self.suggestions],
            "selectionBehavior": self.selection_behavior if self.suggestions else None,
            "overrideReasons": [reason.as_json() for reason in self.override_reasons],
            "links": [link.as_json() for link in self.links],
            "extension": self.extension,
        })


@dataclass(frozen=True)
class Response:
    """A CDS Hooks response. ``cards`` is always written (possibly ``[]``); ``systemActions`` only when
    there is at least one, since CDS Hooks forbids an empty array."""

    cards: tuple[Card, ...] = ()
    system_actions: tuple[SystemAction, ...] = ()

    def as_json(self) -> dict:
        body: dict[str, Any] = {"cards": [card.as_json() for card in self.cards]}
        if self.system_actions:
            body["systemActions"] = [action.as_json() for action in self.system_actions]
        return body
