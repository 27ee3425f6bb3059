"""The team's saved replies (canned responses): shared by every agent, changed by their author."""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from conversations.models import CannedResponse

pytestmark = pytest.mark.django_db(transaction=True)

PATH = "/api/v1/canned-responses"
REFUND = {"shortcut": "Refund", "title": "Refund on its way",
          "body": "Hi {{customer.first_name}}, your refund is on its way. {{ agent.name }}"}


def create(agent: Any, body: dict[str, Any] = REFUND) -> Any:
    return agent.post(PATH, body)


def test_an_agent_saves_a_reply_every_agent_sees_it_and_its_author_changes_and_deletes_it(make_agent):
    grace, linus = make_agent("grace"), make_agent("linus")
    r = create(grace)
    assert r.status_code == 201, r.content
    saved = r.json()
    assert (saved["shortcut"], saved["title"], saved["body"]) == ("refund", REFUND["title"], REFUND["body"])
    assert saved["author"] == {"id": grace.id, "name": "Grace"}
    assert create(linus, {"shortcut": "/hello", "title": "Hello", "body": "Hello {{customer.name}}!"}).status_code == 201
    listed = linus.get(PATH).json()["canned_responses"]
    assert [c["shortcut"] for c in listed] == ["hello", "refund"]

    r = grace.patch(f"{PATH}/{saved['id']}", {"title": "Refund sent", "body": "Your refund is on its way."})
    assert r.status_code == 200, r.content
    assert (r.json()["shortcut"], r.json()["title"], r.json()["body"]) == ("refund", "Refund sent", "Your refund is on its way.")
    assert grace.delete(f"{PATH}/{saved['id']}").status_code == 204
    assert [c["shortcut"] for c in grace.get(PATH).json()["canned_responses"]] == ["hello"]
    r = grace.delete(f"{PATH}/{saved['id']}")
    assert (r.status_code, r.json()["error"]["code"]) == (404, "canned_response_not_found")


def test_another_agents_reply_is_theirs_to_change(make_agent):
    grace, linus = make_agent("grace"), make_agent("linus")
    saved = create(grace).json()
    r = linus.patch(f"{PATH}/{saved['id']}", {"title": "Mine now"})
    assert (r.status_code, r.json()["error"]["code"]) == (403, "not_author")
    r = linus.delete(f"{PATH}/{saved['id']}")
    assert (r.status_code, r.json()["error"]["code"]) == (403, "not_author")
    assert CannedResponse.objects.get().title == REFUND["title"]


#: Fields that are not a saved reply's, and the code each is refused with (on a create and a change).
INVALID = [
    ({**REFUND, "shortcut": "two words"}, "invalid_shortcut"),
    ({**REFUND, "shortcut": ""}, "invalid_shortcut"),
    ({**REFUND, "shortcut": "x" * 33}, "invalid_shortcut"),
    ({**REFUND, "shortcut": "-dash"}, "invalid_shortcut"),
    ({**REFUND, "title": "  "}, "invalid_title"),
    ({**REFUND, "title": "t" * 81}, "invalid_title"),
    ({**REFUND, "body": ""}, "invalid_body"),
    ({**REFUND, "body": "b" * 4001}, "invalid_body"),
    ({**REFUND, "body": "a\u0000b"}, "invalid_body"),
    ({**REFUND, "body": "Dear {{customer.email}}"}, "unknown_placeholder"),
    ({**REFUND, "body": "{{ order.id }} is late"}, "unknown_placeholder"),
    ({**REFUND, "title": 7}, "invalid_field"),
]


@pytest.mark.parametrize(("body", "code"), [*INVALID, ({"shortcut": "x", "title": "x"}, "missing_field")])
def test_a_reply_that_is_not_one_is_refused_with_a_clear_code_and_nothing_is_saved(make_agent, body, code):
    r = create(make_agent("grace"), body)
    assert (r.status_code, r.json()["error"]["code"]) == (400, code), r.content
    assert CannedResponse.objects.count() == 0


@pytest.mark.parametrize(("body", "code"), INVALID)
def test_a_change_that_is_not_one_is_refused_with_the_same_code_and_the_reply_stays(make_agent, body, code):
    grace = make_agent("grace")
    saved = create(grace).json()
    r = grace.patch(f"{PATH}/{saved['id']}", body)
    assert (r.status_code, r.json()["error"]["code"]) == (400, code), r.content
    assert grace.get(PATH).json()["canned_responses"] == [saved]


def test_a_shortcut_is_one_reply_in_any_letter_case(make_agent):
    grace, linus = make_agent("grace"), make_agent("linus")
    create(grace)
    r = create(linus, {**REFUND, "shortcut": "REFUND"})
    assert (r.status_code, r.json()["error"]["code"]) == (409, "shortcut_taken")
    other = create(linus, {**REFUND, "shortcut": "refund2"}).json()
    r = linus.patch(f"{PATH}/{other['id']}", {"shortcut": "refund"})
    assert (r.status_code, r.json()["error"]["code"]) == (409, "shortcut_taken")
    assert linus.get(PATH).json()["canned_responses"][1]["shortcut"] == "refund2"


def test_saved_replies_are_for_agents_only(make_agent, customer, client):
    saved = create(make_agent("grace")).json()
    for call in (lambda: customer.get(PATH), lambda: customer.post(PATH, REFUND),
                 lambda: customer.patch(f"{PATH}/{saved['id']}", {"title": "x"}),
                 lambda: customer.delete(f"{PATH}/{saved['id']}")):
        r = call()
        assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden")
    assert client.get(PATH).status_code == 401
    r = make_agent("linus").patch(f"{PATH}/not-a-uuid", {"title": "x"})
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_field")


@pytest.mark.postgres
def test_two_agents_saving_the_same_shortcut_at_once_get_one_reply(make_agent):
    agents = [make_agent(f"agent{i}") for i in range(6)]
    barrier = threading.Barrier(len(agents))

    def save(i: int) -> int:
        barrier.wait()
        try:
            r = Client().post(PATH, json.dumps({**REFUND, "title": f"by {i}"}), content_type="application/json",
                              HTTP_AUTHORIZATION=f"Bearer {agents[i].token}")
            return r.status_code
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(agents)) as pool:
        statuses = sorted(pool.map(save, range(len(agents))))
    assert statuses == [201] + [409] * (len(agents) - 1)
    assert CannedResponse.objects.count() == 1
    assert uuid.UUID(str(CannedResponse.objects.get().id))
