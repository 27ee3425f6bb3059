"""Satisfaction: a customer rates their resolved conversation (docs/api.md, "Ratings").

Through the API: one rating per resolved period, a repeat replaces it, a
clear refusal for an open conversation, another customer's, or a score
outside 1 to 5 (and nothing stored); agents see the rating on the
conversation and in the list; the customer's devices hear the prompt; the
host application hears ``conversation.rated``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from eventstore.events import Cursor
from eventstore.store import EventStore
from outbound.models import WebhookDelivery
from readmodels import asof
from realtime import frames
from tests.integration.test_agent_tools import customer_says, settle
from tests.integration.webhook_support import receiver, register, run_pipeline  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db(transaction=True)


def rated() -> list[Any]:
    return [r.event for r in EventStore().read_all(Cursor.start(), limit=100_000) if r.event_type == "ConversationRated"]


def resolve(agent: Any, customer_id: str) -> None:
    r = agent.post(f"/api/v1/conversations/{customer_id}/status", {"status": "resolved"})
    assert r.status_code == 200, r.content


def test_a_resolved_conversation_is_rated_and_agents_see_it_in_the_conversation_and_the_list(customer, agent):
    customer_says(customer.id, "My parcel is late")
    settle()
    assert customer.get("/api/v1/rating").json()["asked"] is False
    resolve(agent, customer.id)
    prompt = customer.get("/api/v1/rating").json()
    assert (prompt["asked"], prompt["rating"]) == (True, None)

    r = customer.post("/api/v1/rating", {"score": 4, "comment": "  Quick, <b>thanks</b>  "})
    assert r.status_code == 201, r.content
    assert r.json()["rating"]["score"] == 4 and r.json()["rating"]["comment"] == "Quick, <b>thanks</b>"
    settle()
    conv = agent.get(f"/api/v1/conversations/{customer.id}").json()["conversation"]
    assert (conv["rating"]["score"], conv["rating"]["comment"]) == (4, "Quick, <b>thanks</b>")
    listed = agent.get("/api/v1/conversations").json()["conversations"]
    assert [c["rating"]["score"] for c in listed if c["customer_id"] == customer.id] == [4]


def test_a_repeat_in_the_same_period_replaces_the_score_and_the_same_rating_again_appends_nothing(customer, agent):
    customer_says(customer.id)
    settle()
    resolve(agent, customer.id)
    assert customer.post("/api/v1/rating", {"score": 2}).status_code == 201
    again = customer.post("/api/v1/rating", {"score": 2})
    assert again.status_code == 200 and again.json()["rating"]["score"] == 2
    assert customer.post("/api/v1/rating", {"score": 5, "comment": "sorted after all"}).status_code == 201
    settle()
    assert [(e.score, e.resolution) for e in rated()] == [(2, 1), (5, 1)]
    conv = agent.get(f"/api/v1/conversations/{customer.id}").json()["conversation"]
    assert (conv["rating"]["score"], conv["rating"]["comment"]) == (5, "sorted after all")


def test_a_new_resolved_period_asks_again_and_its_rating_names_that_period(customer, agent):
    customer_says(customer.id)
    settle()
    resolve(agent, customer.id)
    assert customer.post("/api/v1/rating", {"score": 3}).status_code == 201
    customer_says(customer.id, "One more thing")
    settle()  # the customer's message reopens it
    refused = customer.post("/api/v1/rating", {"score": 5})
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "conversation_not_resolved")
    resolve(agent, customer.id)
    assert customer.get("/api/v1/rating").json()["rating"] is None  # a new period: not rated yet
    assert customer.post("/api/v1/rating", {"score": 5}).status_code == 201
    assert [(e.score, e.resolution) for e in rated()] == [(3, 1), (5, 2)]


@pytest.mark.parametrize(("body", "code"), [
    ({"score": 0}, "invalid_score"),
    ({"score": 6}, "invalid_score"),
    ({"score": 4.5}, "invalid_score"),
    ({"score": "5"}, "invalid_score"),
    ({"score": True}, "invalid_score"),
    ({}, "missing_field"),
    ({"score": 3, "comment": "x" * 2001}, "invalid_comment"),
    ({"score": 3, "comment": 7}, "invalid_field"),
])
def test_a_score_outside_one_to_five_or_a_bad_comment_is_refused_and_stores_nothing(customer, agent, body, code):
    customer_says(customer.id)
    settle()
    resolve(agent, customer.id)
    r = customer.post("/api/v1/rating", body)
    assert (r.status_code, r.json()["error"]["code"]) == (400, code)
    assert rated() == []


def test_an_open_conversation_or_none_at_all_cannot_be_rated(customer, make_customer):
    never_wrote = make_customer()
    r = never_wrote.post("/api/v1/rating", {"score": 5})
    assert (r.status_code, r.json()["error"]["code"]) == (400, "conversation_not_resolved")
    customer_says(customer.id)
    settle()
    r = customer.post("/api/v1/rating", {"score": 5})
    assert (r.status_code, r.json()["error"]["code"]) == (400, "conversation_not_resolved")
    assert rated() == []


def test_a_customer_cannot_rate_another_customers_conversation(customer, make_customer, agent):
    other = make_customer()
    customer_says(other.id)
    settle()
    resolve(agent, other.id)
    r = customer.post("/api/v1/rating", {"score": 1, "customer_id": other.id})
    assert (r.status_code, r.json()["error"]["code"]) == (400, "not_your_conversation")
    assert agent.post("/api/v1/rating", {"score": 1}).status_code in (401, 403)  # agents do not rate
    assert rated() == []


def test_the_customers_devices_hear_the_prompt_and_the_rating(customer, agent):
    customer_says(customer.id)
    settle()
    resolve(agent, customer.id)
    assert customer.post("/api/v1/rating", {"score": 5, "comment": "great"}).status_code == 201
    settle()
    events = frames.for_customer(EventStore().read_all(Cursor.start(), limit=1000), customer.id)
    sent = [json.loads(f) for env in frames.envelopes(events, asof.stored(events)) for f in env.to_customer]
    prompts = [(f["asked"], f["rating"] and f["rating"]["score"]) for f in sent if f["type"] == "conversation.rating"]
    assert prompts == [(True, None), (True, 5)]


def test_the_host_application_hears_conversation_rated(receiver, client, customer, agent):  # noqa: F811
    register(client, receiver, ["conversation.rated"])
    customer_says(customer.id)
    settle()
    resolve(agent, customer.id)
    assert customer.post("/api/v1/rating", {"score": 2, "comment": "slow"}).status_code == 201
    run_pipeline()
    bodies = [json.loads(d.body) for d in WebhookDelivery.objects.all()]
    assert [b["type"] for b in bodies] == ["conversation.rated"]
    data = bodies[0]["data"]
    assert data["customer_id"] == customer.id and data["status"] == "resolved"
    assert (data["rating"]["score"], data["rating"]["comment"]) == (2, "slow")
    assert uuid.UUID(bodies[0]["id"])
