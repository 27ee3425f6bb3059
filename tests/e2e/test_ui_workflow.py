"""The team workflow on the dashboard, in Chromium, with two agents in two
browser contexts: tabs and status filters, claim and assign (and their
refusals), private notes, resolve, reopen, snooze and the first-response
clock, all live for both agents and never a note on the customer's page;
the saved replies offered in the reply box when they come late; and an
agent's own unread mark, labels, display name and saved replies, each seen
by whom it is for."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Stack, http, start_stack, stop_stack
from tests.e2e.test_ui import (  # noqa: F401  (browser and pages are fixtures)
    browser,
    conversation_row,
    create_agent,
    customer_send,
    expect,
    log_in_agent,
    open_customer,
    pages,
    save_screenshot,
    send,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A server whose customers wait at most an hour for a first reply."""
    tmp: Path = tmp_path_factory.mktemp("workflow-stack")
    s, drop = start_stack(tmp, extra_env={"PARLEY_FIRST_RESPONSE_SECONDS": "3600"})
    yield s
    stop_stack(s)
    drop()


def token_for(stack: Stack, username: str, password: str) -> str:
    status, body = http("POST", f"{stack.url}/api/v1/auth/agent", {"username": username, "password": password})
    assert status == 201, body
    return str(body["token"])


def test_two_agents_claim_assign_note_resolve_and_snooze_live(browser, pages, stack):
    grace_pw = create_agent(stack, "grace", "Grace")
    linus_pw = create_agent(stack, "linus", "Linus")
    ada = stack.register_customer("Ada Lovelace", "ada@example.com")
    alan = stack.register_customer("Alan Turing", "alan@example.com")
    customer_send(stack, ada["token"], "Where is my parcel?")
    customer_send(stack, alan["token"], "The invoice is wrong.")

    a = log_in_agent(browser, pages, stack, "grace", grace_pw)
    b = log_in_agent(browser, pages, stack, "linus", linus_pw)
    ada_a, ada_b = conversation_row(a, ada["customer_id"]), conversation_row(b, ada["customer_id"])
    alan_a, alan_b = conversation_row(a, alan["customer_id"]), conversation_row(b, alan["customer_id"])

    # Both conversations wait unassigned; the first-response clock runs on each.
    expect(ada_b.locator(".conv__assignee")).to_have_text("Unassigned")
    expect(ada_b.locator(".tag--sla")).to_contain_text("SLA")
    b.get_by_role("button", name="Unassigned", exact=True).click()
    expect(b.get_by_role("button", name="Unassigned", exact=True)).to_have_attribute("aria-pressed", "true")
    expect(ada_b).to_be_visible()
    expect(alan_b).to_be_visible()

    # Grace opens Ada's conversation: the clock counts down in the header too.
    ada_a.click()
    expect(a.locator("#conversation-title")).to_have_text("Ada Lovelace")
    expect(a.locator("#wf-sla")).to_contain_text("left")
    expect(a.locator("#wf-status")).to_have_text("Open")
    expect(a.locator("#wf-assignee")).to_have_text("Unassigned")

    # Grace claims it: Linus sees it leave his Unassigned tab, live.
    a.locator("#wf-claim").click()
    expect(a.locator("#wf-assignee")).to_have_text("Assigned to you")
    expect(a.locator("#wf-claim")).to_be_hidden()
    expect(ada_b).to_be_hidden()
    expect(alan_b).to_be_visible()
    b.get_by_role("button", name="Mine", exact=True).click()
    expect(b.locator("#filter-empty")).to_contain_text("No conversations assigned to you.")
    b.get_by_role("button", name="All", exact=True).click()
    expect(ada_b.locator(".conv__assignee")).to_have_text("Grace")
    a.get_by_role("button", name="Mine", exact=True).click()
    expect(ada_a).to_be_visible()
    expect(alan_a).to_be_hidden()
    a.get_by_role("button", name="All", exact=True).click()

    # Linus's page has gone stale (its socket is down) when Grace claims
    # Alan's conversation; his claim is refused, clearly, and the page catches up.
    alan_b.click()
    expect(b.locator("#conversation-title")).to_have_text("Alan Turing")
    expect(b.locator("#wf-claim")).to_be_visible()
    b.evaluate("() => window.parley.socket.stop()")
    status, _ = http("POST", f"{stack.url}/api/v1/conversations/{alan['customer_id']}/claim",
                     token=token_for(stack, "grace", grace_pw))
    assert status == 200
    expect(alan_a.locator(".conv__assignee")).to_have_text("You")
    b.locator("#wf-claim").click()
    expect(b.locator("#problem")).to_contain_text("another agent already has this conversation")
    expect(b.locator("#problem")).to_contain_text("assigned to Grace")
    expect(b.locator("#wf-assignee")).to_have_text("Assigned to Grace")
    b.evaluate("() => window.parley.socket.start()")
    expect(b.locator("#connection")).to_have_attribute("data-state", "live")

    # Assigning is a compare-and-set on what the page shows: Grace hands
    # Alan's conversation to Linus, who sees it arrive in Mine, live.
    alan_a.click()
    expect(a.locator("#wf-assignee")).to_have_text("Assigned to you")
    a.locator("#wf-assign-to").select_option(label="Linus")
    a.locator("#wf-assign").click()
    expect(a.locator("#wf-assignee")).to_have_text("Assigned to Linus")
    expect(b.locator("#wf-assignee")).to_have_text("Assigned to you")
    b.get_by_role("button", name="Mine", exact=True).click()
    expect(alan_b).to_be_visible()
    expect(ada_b).to_be_hidden()
    b.get_by_role("button", name="All", exact=True).click()

    # A stale assignment is refused: Linus's page still shows Linus when Grace takes it back.
    b.evaluate("() => window.parley.socket.stop()")
    a.locator("#wf-assign-to").select_option(label="Grace (you)")
    a.locator("#wf-assign").click()
    expect(a.locator("#wf-assignee")).to_have_text("Assigned to you")
    b.locator("#wf-assign-to").select_option(label="Unassigned")
    b.locator("#wf-assign").click()
    expect(b.locator("#problem")).to_contain_text("someone changed the assignee")
    expect(b.locator("#wf-assignee")).to_have_text("Assigned to Grace")
    b.evaluate("() => window.parley.socket.start()")
    expect(b.locator("#connection")).to_have_attribute("data-state", "live")

    # A private note: Grace writes it in the yellow "Note" box; Linus sees it
    # live and set apart; the customer's page never shows it.
    customer = open_customer(browser, pages, stack, ada["token"])
    ada_a.click()
    ada_b.click()
    expect(b.locator("#conversation-title")).to_have_text("Ada Lovelace")
    a.locator("#mode-note").click()
    expect(a.locator("#composer")).to_have_class("composer composer--note")
    expect(a.locator("#note-label")).to_have_text("Only agents see notes")
    expect(a.locator("#send")).to_have_text("Add note")
    note_text = "VIP customer: refund approved by finance"
    send(a, note_text)
    expect(a.locator(".msg--note", has_text=note_text).locator(".msg__private")).to_have_text("Only agents see this")
    note_b = b.locator(".msg--note", has_text=note_text)
    expect(note_b.locator(".msg__author")).to_have_text("Note · Grace")
    expect(b.locator(".msg--theirs", has_text=note_text)).to_have_count(0)
    # Then a reply: the customer gets it, and still no note.
    a.locator("#mode-reply").click()
    expect(a.locator("#send")).to_have_text("Send")
    send(a, "Your refund is on its way.")
    expect(customer.locator(".msg--theirs", has_text="refund is on its way")).to_have_count(1)
    expect(customer.get_by_text(note_text)).to_have_count(0)
    expect(a.locator("#wf-sla")).to_be_hidden()  # answered: the clock stopped
    customer.reload()
    expect(customer.locator(".msg--theirs", has_text="refund is on its way")).to_have_count(1)
    expect(customer.get_by_text(note_text)).to_have_count(0)

    # Grace resolves it: Linus sees the status live, on the header and the row.
    a.locator("#wf-resolve").click()
    expect(a.locator("#wf-status")).to_have_text("Resolved")
    expect(a.locator("#wf-resolve")).to_have_text("Reopen")
    expect(b.locator("#wf-status")).to_have_text("Resolved")
    expect(ada_b.locator(".tag--status")).to_have_text("Resolved")

    # The customer writes again: it is open for both, and the clock runs again.
    send(customer, "One more question about the refund")
    expect(a.locator("#wf-status")).to_have_text("Open")
    expect(b.locator("#wf-status")).to_have_text("Open")
    expect(ada_b.locator(".tag--status")).to_have_count(0)
    expect(b.locator("#wf-sla")).to_contain_text("left")

    # Snoozed for an hour: both see it, and the status filter finds it.
    a.locator("#wf-snooze-menu summary").click()
    a.locator("#wf-snooze-hour").click()
    expect(a.locator("#wf-status")).to_contain_text("Snoozed until")
    expect(b.locator("#wf-status")).to_contain_text("Snoozed until")
    expect(ada_b.locator(".tag--status")).to_have_text("Snoozed")
    b.locator("#status-filter").select_option("snoozed")
    expect(ada_b).to_be_visible()
    expect(alan_b).to_be_hidden()
    b.locator("#status-filter").select_option("resolved")
    expect(b.locator("#filter-empty")).to_contain_text("No resolved conversations.")
    b.get_by_role("button", name="Show all conversations").click()
    expect(alan_b).to_be_visible()
    expect(b.locator("#status-filter")).to_have_value("")
    save_screenshot(b, "agent-workflow.png")

    # A snooze until a time of one's own choosing.
    a.locator("#wf-resolve").click()  # "Reopen"
    expect(a.locator("#wf-status")).to_have_text("Open")
    a.locator("#wf-snooze-menu summary").click()
    a.locator("#wf-snooze-at").fill("2099-01-01T09:00")  # too far: the API refuses (within a year)
    a.get_by_role("button", name="Snooze until then").click()
    expect(a.locator("#problem")).to_contain_text("Could not snooze")
    expect(a.locator("#wf-status")).to_have_text("Open")


def test_a_note_keeps_its_id_through_a_retry_and_is_stored_once(browser, pages, stack):
    grace_pw = create_agent(stack, "hopper", "Hopper")
    eve = stack.register_customer("Eve Example", "eve@example.com")
    customer_send(stack, eve["token"], "Hello")
    a = log_in_agent(browser, pages, stack, "hopper", grace_pw)
    conversation_row(a, eve["customer_id"]).click()
    expect(a.locator("#conversation-title")).to_have_text("Eve Example")

    # The first save fails on the way (no connection); Retry sends the same note id.
    a.route("**/notes", lambda route: route.abort())
    a.locator("#mode-note").click()
    send(a, "Call back on Monday")
    failed = a.locator(".msg--note", has_text="Call back on Monday")
    expect(failed).to_have_attribute("data-state", "failed")
    expect(failed.locator(".msg__error")).to_contain_text("no connection")
    note_id = failed.get_attribute("data-message-id")
    a.unroute("**/notes")
    failed.get_by_role("button", name="Retry").click()
    saved = a.locator(f'.msg--note[data-message-id="{note_id}"]')
    expect(saved).to_have_attribute("data-state", "saved")
    expect(saved.locator(".msg__private")).to_have_text("Only agents see this")
    status, page = http("GET", f"{stack.url}/api/v1/conversations/{eve['customer_id']}/messages?after=0",
                        token=token_for(stack, "hopper", grace_pw))
    assert status == 200
    assert [m["note_id"] for m in page["messages"] if m.get("kind") == "note"] == [note_id]


def test_saved_replies_that_arrive_late_are_offered_after_the_box_got_its_focus_back(browser, pages, stack):
    """The reply box loses its focus for a moment (its own Reply button, a
    menu closed with Escape) and the agent types "/" at once, while the
    saved replies are still on their way: they are offered when they come
    (a blur used to close the list 150 ms later even with the focus back
    in the box, and the list that came then was never shown)."""
    password = create_agent(stack, "turing", "Turing")
    status, body = http("POST", f"{stack.url}/api/v1/canned-responses", {
        "shortcut": "slowparcel", "title": "Where the parcel is",
        "body": "Hello {{customer.first_name}}, your parcel left today."}, token_for(stack, "turing", password))
    assert status == 201, body
    mia = stack.register_customer("Mia Example", "mia@example.com")
    customer_send(stack, mia["token"], "Where is my parcel?")
    a = log_in_agent(browser, pages, stack, "turing", password)
    conversation_row(a, mia["customer_id"]).click()
    expect(a.locator("#conversation-title")).to_have_text("Mia Example")

    held: list[Any] = []
    a.route("**/api/v1/canned-responses", lambda route: held.append(route))
    box = a.locator("#composer-input")
    box.click()
    a.locator("#mode-reply").click()  # the box loses the focus, and the button gives it back
    expect(box).to_be_focused()
    a.keyboard.type("/")
    expect(a.locator("#canned-status")).to_have_text("Loading saved replies…")
    a.wait_for_timeout(400)  # longer than a blur takes to close the list
    assert len(held) == 1
    held[0].continue_()
    options = a.locator("#canned-list [role=option]")
    expect(options).to_have_count(1)
    expect(options).to_contain_text("/slowparcel")
    a.keyboard.type("slow")
    a.keyboard.press("Enter")
    expect(box).to_have_value("Hello Mia, your parcel left today.")
    a.unroute("**/api/v1/canned-responses")


def test_an_agents_own_unread_mark_labels_display_name_and_saved_replies_each_reach_whom_they_should(browser, pages, stack):
    """Mary marks a conversation unread: bold in her list and her Unread
    filter (across a reload) until she opens it again, never in Dorothy's.
    A label she adds shows on the row and header for both, live, and goes
    when she removes it. She writes a saved reply, changes it, inserts it
    with "/" (the customer's first name and her new name filled in) and
    deletes it. The name she saves is on her avatar and, on the customer's
    page, on every message of hers: never her login."""
    mary_pw = create_agent(stack, "mjackson", "Mary")
    dorothy_pw = create_agent(stack, "dvaughan", "Dorothy")
    nora = stack.register_customer("Nora Example", "nora@example.com")
    otto = stack.register_customer("Otto Example", "otto@example.com")
    customer_send(stack, nora["token"], "My parcel never came.")
    customer_send(stack, otto["token"], "Can I change my address?")
    customer = open_customer(browser, pages, stack, nora["token"])
    a = log_in_agent(browser, pages, stack, "mjackson", mary_pw)
    b = log_in_agent(browser, pages, stack, "dvaughan", dorothy_pw)
    nora_a, nora_b = conversation_row(a, nora["customer_id"]), conversation_row(b, nora["customer_id"])
    otto_a, otto_b = conversation_row(a, otto["customer_id"]), conversation_row(b, otto["customer_id"])
    marked = re.compile(r"\bconv--marked\b")

    # Mary reads Nora's conversation (for everyone), then marks it unread for herself.
    nora_a.click()
    expect(a.locator("#conversation-title")).to_have_text("Nora Example")
    expect(nora_b.locator(".count")).to_have_count(0)
    a.locator("#mark-unread").click()
    expect(a.locator("#open")).to_be_hidden()
    expect(nora_a).to_have_class(marked)
    expect(nora_a.locator(".dot")).to_have_attribute("title", "You marked it unread")
    expect(nora_b).not_to_have_class(marked)
    # Frames come in order: once Otto's next message is on Dorothy's page, so was Mary's mark, and it is not hers.
    customer_send(stack, otto["token"], "The new one is 12 Main Street.")
    expect(otto_b.locator(".count")).to_have_text("2")
    expect(nora_b).not_to_have_class(marked)
    b.locator("#filter").select_option("unread")
    expect(otto_b).to_be_visible()
    expect(nora_b).to_be_hidden()
    b.locator("#filter").select_option("all")
    expect(nora_b).to_be_visible()
    expect(nora_b).not_to_have_class(marked)

    # Mary's Unread filter keeps it, in the address too: a reload asks the server again.
    a.locator("#filter").select_option("unread")
    expect(a).to_have_url(re.compile(r"\?show=unread$"))
    a.reload()
    expect(a.locator("#connection")).to_have_attribute("data-state", "live")
    expect(a.locator("#filter")).to_have_value("unread")
    expect(otto_a).to_be_visible()
    expect(nora_a).to_have_class(marked)
    # Opened again, the mark has done its job: it leaves the Unread filter, for good.
    nora_a.click()
    expect(a.locator("#conversation-title")).to_have_text("Nora Example")
    expect(nora_a).to_be_hidden()
    a.reload()
    expect(a.locator("#connection")).to_have_attribute("data-state", "live")
    expect(otto_a).to_be_visible()
    expect(nora_a).to_be_hidden()
    a.locator("#filter").select_option("all")
    expect(nora_a).to_be_visible()
    expect(nora_a).not_to_have_class(marked)

    # A label from the Labels menu: on both agents' rows and headers, live; removed, gone for both.
    nora_b.click()
    expect(b.locator("#conversation-title")).to_have_text("Nora Example")
    a.locator("#wf-labels-menu summary").click()
    expect(a.locator("#wf-label-list")).to_have_text("No labels yet.")
    a.locator("#wf-label-input").fill("Refund")
    a.locator("#wf-label-form").get_by_role("button", name="Add").click()
    expect(a.locator("#wf-label-list .label")).to_have_text(["refund"])
    expect(a.locator("#wf-label-input")).to_have_value("")
    expect(a.locator("#wf-labels .label")).to_have_text(["refund"])
    expect(nora_a.locator(".conv__labels .label")).to_have_text(["refund"])
    expect(nora_b.locator(".conv__labels .label")).to_have_text(["refund"])
    expect(b.locator("#wf-labels .label")).to_have_text(["refund"])
    expect(otto_b.locator(".conv__labels")).to_have_count(0)
    a.get_by_role("button", name="Remove the label refund").click()
    expect(a.locator("#wf-label-list")).to_have_text("No labels yet.")
    expect(a.locator("#wf-labels")).to_be_hidden()
    expect(nora_a.locator(".conv__labels")).to_have_count(0)
    expect(nora_b.locator(".conv__labels")).to_have_count(0)
    expect(b.locator("#wf-labels")).to_be_hidden()
    a.keyboard.press("Escape")

    # Mary answers under the name she has now (her first name, not her login).
    send(a, "Let me look into it.")
    first = customer.locator(".msg--theirs", has_text="Let me look into it.")
    expect(first.locator(".msg__author")).to_have_text("Mary")

    # A saved reply: written, then changed, in the dialog from the account menu.
    a.locator("#account-menu summary").click()
    a.locator("#open-saved-replies").click()
    dialog = a.locator("#saved-replies")
    expect(dialog).to_be_visible()
    a.locator("#saved-shortcut").fill("lookedup")
    a.locator("#saved-title-input").fill("Parcel found")
    a.locator("#saved-body").fill("Hi {{customer.first_name}}, I found it.")
    a.locator("#saved-save").click()
    saved = a.locator("#saved-list .saved__item", has_text="/lookedup")
    expect(saved.locator(".saved__text")).to_have_text("Hi {{customer.first_name}}, I found it.")
    expect(saved).to_contain_text("Yours")
    expect(a.locator("#saved-shortcut")).to_have_value("")
    a.get_by_role("button", name="Edit /lookedup").click()
    expect(a.locator("#saved-form-title")).to_have_text("Change /lookedup")
    expect(a.locator("#saved-body")).to_have_value("Hi {{customer.first_name}}, I found it.")
    a.locator("#saved-body").fill("Hello {{customer.first_name}}, {{agent.name}} here: your parcel is on its way.")
    a.locator("#saved-save").click()
    expect(saved.locator(".saved__text")).to_have_text("Hello {{customer.first_name}}, {{agent.name}} here: your parcel is on its way.")
    expect(a.locator("#saved-list .saved__item", has_text="/lookedup")).to_have_count(1)
    expect(a.locator("#saved-form-title")).to_have_text("New saved reply")
    a.locator("#saved-close").click()
    expect(dialog).to_be_hidden()

    # Her display name: on her avatar and name at once.
    expect(a.locator("#me-avatar")).to_have_text("MA")
    a.locator("#account-menu summary").click()
    a.locator("#display-name").fill("Mary Winston Jackson")
    a.get_by_role("button", name="Save name").click()
    expect(a.locator("#me-name")).to_have_text("Mary Winston Jackson")
    expect(a.locator("#me-avatar")).to_have_text("MJ")
    expect(a.locator("#profile-error")).to_be_hidden()
    a.keyboard.press("Escape")

    # "/" inserts the changed reply, filled in with Nora's first name and Mary's new name.
    box = a.locator("#composer-input")
    box.click()
    box.press_sequentially("/lookedup")
    expect(a.locator("#canned-list [role=option]")).to_have_count(1)
    box.press("Enter")
    reply = "Hello Nora, Mary Winston Jackson here: your parcel is on its way."
    expect(box).to_have_value(reply)
    box.press("Enter")
    expect(customer.locator(".msg--theirs", has_text=reply).locator(".msg__author")).to_have_text("Mary Winston Jackson")
    # Read again, every message of hers carries the new name; her login shows nowhere.
    customer.reload()
    expect(customer.locator(".msg--theirs[data-sender=agent] .msg__author")).to_have_text(["Mary Winston Jackson"] * 2)
    expect(customer.get_by_text("mjackson")).to_have_count(0)

    # Deleted, it is offered no more.
    a.locator("#account-menu summary").click()
    a.locator("#open-saved-replies").click()
    expect(saved).to_have_count(1)
    a.get_by_role("button", name="Delete /lookedup").click()
    expect(saved).to_have_count(0)
    a.locator("#saved-close").click()
    box.click()
    box.press_sequentially("/lookedup")
    expect(a.locator("#canned-status")).to_contain_text("No saved repl")
    expect(a.locator("#canned-list [role=option]")).to_have_count(0)
