"""Search (issue 17): messages' current text and customers' names and emails,
ranked and highlighted, for agents; customers search their own conversation.
Runs on SQLite (FTS5) and PostgreSQL (GIN over to_tsvector)."""

from __future__ import annotations

import re
from unittest import mock

import pytest
from django.core.management import call_command

from customers.services import customer_update
from eventstore.models import StoredEvent
from readmodels import fulltext
from readmodels.fulltext import ELLIPSIS, MARK_END, MARK_START
from readmodels.models import SearchEntry
from readmodels.projections import read_models
from readmodels.rebuild import rebuild
from tests.conftest import new_id

pytestmark = pytest.mark.django_db(transaction=True)

MARKED = re.compile(f"{MARK_START}(.*?){MARK_END}")


def say(caller, body: str) -> str:
    """The customer writes ``body``; returns the message id."""
    mid = new_id()
    assert caller.post("/api/v1/messages", {"message_id": mid, "body": body}).status_code == 201
    return mid


def reply(agent, customer_id: str, body: str) -> str:
    mid = new_id()
    r = agent.post(f"/api/v1/conversations/{customer_id}/messages", {"message_id": mid, "body": body})
    assert r.status_code == 201, r.content
    return mid


def search(caller, q: str, path: str = "/api/v1/search", **params) -> dict:
    r = caller.get(path, q=q, **params)
    assert r.status_code == 200, r.content
    return r.json()


def found(caller, q: str, path: str = "/api/v1/search") -> list[str]:
    """The ids of what ``q`` finds, best first: message ids, or ``customer:<id>``."""
    return [r["message"]["message_id"] if r["message"] else f"customer:{r['customer_id']}"
            for r in search(caller, q, path)["results"]]


def marked(highlight: str) -> list[str]:
    return MARKED.findall(highlight)


def unmarked(highlight: str) -> str:
    return highlight.replace(MARK_START, "").replace(MARK_END, "")


def test_a_better_match_ranks_first_and_each_result_carries_the_message_as_the_api_shows_it(
    make_customer, agent, project
):
    ada, bob = make_customer("Ada Lovelace"), make_customer("Bob Marley", email="bob@example.com")
    passing = say(bob, "Could you look at my order from last week, it came late and the box was damaged; "
                       "I would like a refund if it cannot be fixed, thanks a lot for your help")
    insistent = say(ada, "Refund please. I want a refund, a full refund.")
    say(ada, "Nothing to see here")
    project()

    answer = search(agent, "refund")
    assert [r["message"]["message_id"] for r in answer["results"]] == [insistent, passing]
    first = answer["results"][0]
    assert (first["kind"], first["customer_id"], first["customer_name"]) == ("message", ada.id, "Ada Lovelace")
    listed = agent.get(f"/api/v1/conversations/{ada.id}/messages").json()["messages"]
    assert first["message"] == next(m for m in listed if m["message_id"] == insistent)
    assert answer["position"] == StoredEvent.objects.order_by("-position").first().position


def test_every_word_must_begin_a_word_of_the_text_in_any_order(customer, agent, project):
    mid = say(customer, "My parcel was refunded yesterday")
    say(customer, "Where is my parcel?")
    project()
    assert found(agent, "refun") == [mid]
    assert found(agent, "yesterday PARCEL") == [mid]
    assert found(agent, "arcel") == []
    assert found(agent, "parcel tomorrow") == []


@pytest.mark.parametrize("body", [
    "<script>alert(1)</script> & <b>bold</b> I want a refund",
    "<b>ok</b> my refund <i>?</i>",  # short words at both edges (PostgreSQL's headline drops them by default)
])
def test_the_highlight_is_text_with_markers_only_around_the_matches(customer, agent, project, body):
    say(customer, body)
    project()
    for path, caller in (("/api/v1/search", agent), ("/api/v1/messages/search", customer)):
        (result,) = search(caller, "refund", path)["results"]
        assert result["message"]["body"] == body
        assert unmarked(result["highlight"]) == body  # short: the whole text, every character as written
        assert marked(result["highlight"]) == ["refund"]


def test_a_long_text_is_cut_around_the_match_with_an_ellipsis(customer, agent, project):
    words = [f"word{i}" for i in range(200)]
    words[100] = "needle"
    say(customer, " ".join(words))
    project()
    (result,) = search(agent, "needle")["results"]
    highlight = result["highlight"]
    assert marked(highlight) == ["needle"]
    assert highlight.startswith(ELLIPSIS) and highlight.endswith(ELLIPSIS)
    assert len(unmarked(highlight).split()) < 60
    assert "word0 " not in highlight


def test_query_syntax_is_taken_as_words(customer, agent, project):
    mid = say(customer, 'A NEAR miss: "quoted" text* OR not, col:x and -minus')
    project()
    for q in ['NEAR(', '"quoted', 'text*', 'OR', 'col:x', '-minus', "it's", "back\\slash", "'", "&|!():*"]:
        r = agent.get("/api/v1/search", q=q)
        assert r.status_code == 200, (q, r.content)
    assert found(agent, 'NEAR "quoted" OR') == [mid]
    assert found(agent, "col:x -minus") == [mid]
    assert found(agent, "&|!():*") == []  # no word in it: nothing to find


def test_an_edit_replaces_the_old_text(customer, agent, project):
    mid = say(customer, "My parcel is lost")
    project()
    assert found(agent, "lost") == [mid]
    assert customer.patch(f"/api/v1/messages/{mid}", {"body": "My parcel arrived"}).status_code == 200
    project()
    assert found(agent, "lost") == []
    (result,) = search(agent, "arrived")["results"]
    assert result["message"]["message_id"] == mid
    assert result["message"]["body"] == "My parcel arrived"
    assert result["message"]["edited_at"] is not None
    assert found(customer, "lost", "/api/v1/messages/search") == []
    assert found(customer, "arrived", "/api/v1/messages/search") == [mid]


def test_customers_are_found_by_name_and_email_and_a_change_of_details_moves_them(make_customer, agent, project):
    ada = make_customer("Ada Lovelace", email="ada@example.com")
    bob = make_customer("Bob Marley", email="bob@example.com")
    project()
    (result,) = search(agent, "lovelace")["results"]
    assert result["kind"] == "customer" and result["message"] is None
    assert (result["customer_id"], result["customer_name"]) == (ada.id, "Ada Lovelace")
    assert marked(result["highlight"]) == ["Lovelace"]
    assert found(agent, "ada@example.com") == [f"customer:{ada.id}"]
    (by_address,) = search(agent, "ada@example.com")["results"]
    assert unmarked(by_address["highlight"]) == "Ada Lovelace \u00b7 ada@example.com"
    assert found(agent, "ada@exa") == [f"customer:{ada.id}"]
    assert set(found(agent, "example.com")) == {f"customer:{ada.id}", f"customer:{bob.id}"}  # by the domain

    customer_update(customer_id=ada.id, name="Augusta King", email="countess@example.org")
    project()
    assert found(agent, "lovelace") == []
    assert found(agent, "ada@example.com") == []
    assert found(agent, "augusta") == [f"customer:{ada.id}"]
    assert found(agent, "countess@example.org") == [f"customer:{ada.id}"]


def test_a_message_result_names_the_customer_as_the_directory_does_now(customer, agent, project):
    say(customer, "Hello there")
    project()
    customer_update(customer_id=customer.id, name="Ada King")
    project()
    (result,) = search(agent, "hello")["results"]
    assert result["customer_name"] == "Ada King"
    assert result["message"]["sender"]["name"] == "Ada King"


def test_a_customer_searches_only_their_own_conversation(make_customer, agent, project):
    ada, bob = make_customer("Ada Lovelace"), make_customer("Bob Marley", email="bob@invoice.example")
    hers = say(ada, "Where is my invoice?")
    answer = reply(agent, ada.id, "Your invoice is attached")
    his = say(bob, "I never got an invoice")
    project()
    assert set(found(agent, "invoice")) == {hers, answer, his, f"customer:{bob.id}"}
    assert set(found(ada, "invoice", "/api/v1/messages/search")) == {hers, answer}
    assert found(bob, "invoice", "/api/v1/messages/search") == [his]
    # Not even customers (their own name included): a customer's search is their messages.
    assert found(ada, "lovelace", "/api/v1/messages/search") == []
    assert found(bob, "marley", "/api/v1/messages/search") == []


def test_notes_are_never_found(customer, agent, project):
    say(customer, "Can I get a discount?")
    note = {"note_id": new_id(), "body": "secret vip voucher for this one"}
    assert agent.post(f"/api/v1/conversations/{customer.id}/notes", note).status_code == 201
    project()
    assert found(agent, "voucher") == []
    assert found(agent, "secret vip") == []
    assert found(customer, "voucher", "/api/v1/messages/search") == []
    assert len(found(agent, "discount")) == 1


def test_limit_bounds_the_results_and_min_position_waits_for_a_write(customer, agent, project):
    for i in range(5):
        say(customer, f"ticket number {i}")
    project()
    assert len(search(agent, "ticket", limit=3)["results"]) == 3
    assert len(search(agent, "ticket")["results"]) == 5
    mid = new_id()
    written = customer.post("/api/v1/messages", {"message_id": mid, "body": "ticket late"}).json()
    project()
    answer = search(customer, "late", "/api/v1/messages/search", min_position=written["position"])
    assert answer["position"] >= written["position"]
    assert [r["message"]["message_id"] for r in answer["results"]] == [mid]


def test_the_agent_endpoint_is_for_agents_and_the_customer_endpoint_for_customers(customer, agent, client):
    assert customer.get("/api/v1/search", q="x").status_code == 403
    assert agent.get("/api/v1/messages/search", q="x").status_code == 403
    assert client.get("/api/v1/search", {"q": "x"}).status_code == 401
    assert client.get("/api/v1/messages/search", {"q": "x"}).status_code == 401


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"q": ""},
        {"q": "   "},
        {"q": "x" * 201},
        {"q": "a\x00b"},
        {"q": "ok", "limit": "0"},
        {"q": "ok", "limit": "101"},
        {"q": "ok", "limit": "ten"},
        {"q": "ok", "min_position": "-1"},
    ],
)
@pytest.mark.parametrize("who", ["agent", "customer"])
def test_bad_queries_are_refused_in_the_error_shape_and_store_nothing(customer, agent, who, params):
    before = StoredEvent.objects.count()
    caller, path = (agent, "/api/v1/search") if who == "agent" else (customer, "/api/v1/messages/search")
    r = caller.get(path, **params)
    assert r.status_code == 400, r.content
    assert r.json()["error"]["code"] == "invalid_parameter"
    assert r.json()["error"]["detail"]
    assert StoredEvent.objects.count() == before


def test_a_query_of_the_longest_allowed_length_is_answered(customer, agent, project):
    say(customer, "hello")
    project()
    assert search(agent, "hello " + "x" * 194)["results"] == []


def _answers(agent, customer) -> dict[str, list[dict]]:
    queries = ["refund", "parcel", "lovelace", "king", "ada@example.com", "arrived", "lost", "voucher"]
    agent_side = {q: search(agent, q)["results"] for q in queries}
    customer_side = {f"own:{q}": search(customer, q, "/api/v1/messages/search")["results"] for q in queries}
    return agent_side | customer_side


def _entries() -> list[tuple]:
    return sorted(SearchEntry.objects.values_list("key", "kind", "customer_id", "message_id", "text", "tx", "position"))


def test_a_rebuild_gives_the_same_index_as_live_projection(customer, make_customer, agent, project):
    lost = say(customer, "My parcel is lost, I want a refund")
    say(customer, "Refund refund refund")
    reply(agent, customer.id, "Sorry about the parcel <script>")
    customer.patch(f"/api/v1/messages/{lost}", {"body": "My parcel arrived after all"})
    other = make_customer("Bob Marley", email="bob@example.com")
    say(other, "No refund for me please")
    agent.post(f"/api/v1/conversations/{customer.id}/notes", {"note_id": new_id(), "body": "voucher"})
    customer_update(customer_id=customer.id, name="Ada King")
    project()
    live_rows, live = _entries(), _answers(agent, customer)
    assert live["refund"] and live["king"] and not live["lost"]

    rebuild(read_models())
    assert _entries() == live_rows
    assert _answers(agent, customer) == live

    call_command("rebuild_readmodels", "--only", "search")
    assert _entries() == live_rows
    assert _answers(agent, customer) == live

    # And the index keeps following the log after a rebuild.
    late = say(customer, "One more refund question")
    project()
    assert late in found(agent, "refund")


def test_ranking_is_among_the_newest_matches_so_a_common_word_costs_a_bounded_amount(customer, agent, project):
    best = say(customer, "Refund refund refund")
    newer = say(customer, "I asked about a refund in my earlier message, any news on it yet?")
    newest = say(customer, "Still no refund, and this is a long message about a refund and other things")
    project()
    assert found(agent, "refund") == [best, newest, newer]
    with mock.patch.object(fulltext, "RANKED", 2):  # the best is not among the two newest
        assert found(agent, "refund") == [newest, newer]
