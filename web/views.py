"""The pages: customer chat, visitor sign-up, agent dashboard, web app manifest.

Views only route: the page's cookie identity lives in web.identity, rate
limits in accounts.ratelimit, customers are registered by customers.services. Everything a page shows
after the first paint comes from the public API and the websocket.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.auth.decorators import user_passes_test
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from accounts import ratelimit
from accounts.principals import CUSTOMER_COOKIE, agent_display_name
from accounts.tokens import InvalidCustomerToken, verify_link_token
from conversations.away import away_status, business_hours
from customers.services import CustomerError, CustomerNotFound, customer_get, customer_register
from readmodels import reports, selectors
from readmodels.projections import report_clock
from web import charts as charts_module
from web.forms import StartChatForm
from web.identity import cookie_customer_id, forget_customer, leave_popout, remember_customer, remember_new_customer
from web.security import page_headers

THEME_COLOR = "#0f766e"
BACKGROUND_COLOR = "#f6f7f5"


def signups_per_hour() -> int:
    return int(getattr(settings, "PARLEY_VISITOR_SIGNUPS_PER_HOUR", 10))


def visitor_signup_enabled() -> bool:
    return bool(getattr(settings, "PARLEY_VISITOR_SIGNUP", True))


def is_agent(user: Any) -> bool:
    return bool(user.is_authenticated and user.is_active and user.is_staff)


@require_safe
def home(request: HttpRequest) -> HttpResponse:
    """Agents go to their dashboard, everyone else to the chat."""
    return redirect("web:agent" if is_agent(request.user) else "web:chat")


@require_safe
@never_cache
@page_headers
@ensure_csrf_cookie
def chat(request: HttpRequest) -> HttpResponse:
    token = request.GET.get("token")
    if token is not None:
        return _exchange_token(request, token)
    customer_id = cookie_customer_id(request)
    if customer_id is None:
        response = (redirect("web:chat_start") if visitor_signup_enabled()
                    else render(request, "web/chat_closed.html", status=401))
        if request.COOKIES.get(CUSTOMER_COOKIE):
            forget_customer(response)  # it no longer stands: expired, or the widget signed its window out
        return response
    try:
        customer = customer_get(customer_id=customer_id)
    except CustomerNotFound:
        response = render(request, "web/chat_closed.html", status=401)
        forget_customer(response)
        return response
    if is_agent(request.user):
        # The API and the socket speak for the agent session first: this page
        # would act as the agent. Say so rather than fail in odd ways.
        return render(request, "web/chat_as_agent.html", {"customer_name": customer.name}, status=409)
    config = {
        "customerId": str(customer.id),
        "customerName": customer.name,
        "socketPath": "/ws/v1/",
        "pushModule": static("notifications/push.js"),
    }
    away = away_status(business_hours(), dt.datetime.now(dt.timezone.utc))
    return render(request, "web/chat.html", {"customer": customer, "config": config,
                                             "away": away if away and not away["open"] else None})


def _cross_site(request: HttpRequest) -> bool:
    """Whether another site sent the browser here (a link, a form, a script).

    Sec-Fetch-Site is set by the browser and cannot be forged by a page;
    "none" is the person's own doing (typed, bookmarked). A browser without
    it counts as cross-site unless its Referer is this very origin."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site not in ("same-origin", "none")
    referer = request.headers.get("Referer", "")
    return not referer.startswith(f"{request.scheme}://{request.get_host()}/")


def _exchange_token(request: HttpRequest, token: str) -> HttpResponse:
    """Swap a link's token for the cookie and drop it from the address bar.

    The token is a customer token (a host application's link) or an email's
    chat link token (accounts.tokens), which expires sooner and is swapped
    for a fresh customer token.

    One exception: another site sending the browser of a customer already
    signed in here to a link for a *different* customer. Switching silently
    would let that site put the person in a conversation of its choosing
    (their next message would land there), so the page asks, and only a
    POST from this page (CSRF-checked) switches."""
    try:
        customer_id, cookie_token = verify_link_token(token)
    except InvalidCustomerToken as err:
        response = render(
            request,
            "web/chat_link_invalid.html",
            {"expired": err.code == "token_expired", "signup": visitor_signup_enabled()},
            status=403,
        )
        response.headers["Referrer-Policy"] = "no-referrer"
        return response
    current = cookie_customer_id(request)
    if request.method == "GET" and current is not None and current != customer_id and _cross_site(request):
        response = render(request, "web/chat_switch.html", {
            "token": token, "current": _name_of(current), "offered": _name_of(customer_id),
        })
        response.headers["Referrer-Policy"] = "no-referrer"
        return response
    response = HttpResponseRedirect(reverse("web:chat"))
    response.headers["Referrer-Policy"] = "no-referrer"
    remember_customer(response, token=cookie_token)
    return response


def _name_of(customer_id: Any) -> str:
    try:
        return customer_get(customer_id=customer_id).name
    except CustomerNotFound:
        return "another customer"


@require_POST
@never_cache
@page_headers
def chat_switch(request: HttpRequest) -> HttpResponse:
    """The person chose, on this site's own page, to open the linked conversation."""
    token = request.POST.get("token", "")
    return _exchange_token(request, token)


@require_http_methods(["GET", "POST"])
@never_cache
@page_headers
@ensure_csrf_cookie
def chat_start(request: HttpRequest) -> HttpResponse:
    """The pre-chat form: a visitor gives a name and email and gets a conversation."""
    if not visitor_signup_enabled():
        return render(request, "web/chat_closed.html", status=404)
    if request.method == "GET" and cookie_customer_id(request) is not None:
        return redirect("web:chat")
    form = StartChatForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        verdict = ratelimit.hit("signup", ratelimit.client_bucket(request), limit=signups_per_hour(), window=3600)
        if not verdict.allowed:
            response = render(request, "web/chat_start.html", {"form": form, "rate_limited": True}, status=429)
            response.headers["Retry-After"] = str(verdict.retry_after)
            return response
        try:
            registration = customer_register(
                name=form.cleaned_data["name"], email=form.cleaned_data["email"], actor="visitor"
            )
        except CustomerError as err:
            form.add_error(None, err.detail)
        else:
            response = redirect("web:chat")
            remember_new_customer(response, customer_id=registration.customer.id)
            return response
    status = 400 if request.method == "POST" else 200
    return render(request, "web/chat_start.html", {"form": form}, status=status)


@require_POST
def chat_leave(request: HttpRequest) -> HttpResponse:
    """Forget this browser's conversation (a shared computer, or not you).

    A window the widget opened is signed out for good (its pop-out session
    and the push subscriptions made in it go), not only this cookie."""
    response = redirect("web:chat_start" if visitor_signup_enabled() else "web:chat")
    leave_popout(request)
    forget_customer(response)
    return response


@require_safe
@never_cache
@page_headers
@ensure_csrf_cookie
@user_passes_test(is_agent)
def agent(request: HttpRequest) -> HttpResponse:
    user = request.user
    config = {
        "agentId": str(user.pk),
        "agentName": agent_display_name(user),  # type: ignore[arg-type]
        "socketPath": "/ws/v1/",
    }
    return render(request, "web/agent.html", {
        "config": config, "agent_name": config["agentName"], "agent_username": user.get_username(),
    })


@require_safe
def manifest(request: HttpRequest) -> JsonResponse:
    """The web app manifest that makes the chat page installable."""
    icons = [
        {"src": static("web/icons/icon-192.png"), "sizes": "192x192", "type": "image/png", "purpose": "any"},
        {"src": static("web/icons/icon-512.png"), "sizes": "512x512", "type": "image/png", "purpose": "any"},
        {"src": static("web/icons/icon-maskable-512.png"), "sizes": "512x512", "type": "image/png", "purpose": "maskable"},
    ]
    body = {
        "id": "/chat/",
        "name": "Parley",
        "short_name": "Parley",
        "description": "Chat with our support team.",
        "start_url": "/chat/",
        "scope": "/chat/",
        "display": "standalone",
        "orientation": "any",
        "background_color": BACKGROUND_COLOR,
        "theme_color": THEME_COLOR,
        "icons": icons,
    }
    response = JsonResponse(body, json_dumps_params={"indent": 2})
    response["Content-Type"] = "application/manifest+json"
    response["Cache-Control"] = "public, max-age=3600"
    return response


#: The push service worker belongs to notifications; the page serves it from
#: the site root so that its scope can cover /chat/.
SERVICE_WORKER = Path(apps.get_app_config("notifications").path) / "static" / "notifications" / "sw.js"


@lru_cache(maxsize=1)
def _service_worker_source(mtime: float) -> bytes:
    return SERVICE_WORKER.read_bytes()


@require_safe
def service_worker(request: HttpRequest) -> HttpResponse:
    """``/sw.js`` from the site root, so its scope can cover ``/chat/``."""
    body = _service_worker_source(SERVICE_WORKER.stat().st_mtime)
    response = HttpResponse(body, content_type="text/javascript; charset=utf-8")
    response["Service-Worker-Allowed"] = "/"
    # Browsers check for a new worker on navigation; let them always see the latest.
    response["Cache-Control"] = "no-cache"
    return response


@require_safe
@never_cache
@page_headers
@user_passes_test(is_agent)
def reports_page(request: HttpRequest) -> HttpResponse:
    """The team's figures over a range of days: charts and tables, printable (docs/reports.md)."""
    zone = report_clock().zone
    today = dt.datetime.now(zone).date()
    problem, status = "", 200
    try:
        last = dt.date.fromisoformat(request.GET.get("to") or today.isoformat())
        first = dt.date.fromisoformat(request.GET.get("from") or (last - dt.timedelta(days=29)).isoformat())
    except ValueError:
        first, last, problem = today - dt.timedelta(days=29), today, "Choose the days as dates."
    if not problem and first > last:
        problem = "The first day comes after the last one: choose them the other way round."
    elif not problem and (last - first).days + 1 > reports.MAX_DAYS:
        problem = f"A report covers at most {reports.MAX_DAYS} days."
    if problem:
        first, last, status = today - dt.timedelta(days=29), today, 400
    team = reports.summary(first, last)
    agent = request.GET.get("agent") or None
    agent_name = selectors.agent_name(agent) if agent is not None else None
    if agent is not None and agent_name is None:
        problem, agent, status = (problem or "There is no such agent: showing the whole team."), None, 400
    summary = team if agent is None else reports.summary(first, last, agent)
    days = reports.daily(first, last, agent)["days"]
    every = max(1, len(days) // 10)
    label = "%d %b"
    # For one agent, conversations started count for the team only (docs/reports.md): chart their replies instead.
    first_chart = (
        charts_module.bars("Conversations started per day",
                           [(dt.date.fromisoformat(d["day"]).strftime(label), d["conversations"]) for d in days],
                           every=every)
        if agent is None else
        charts_module.bars("Replies per day",
                           [(dt.date.fromisoformat(d["day"]).strftime(label), d["messages"]["agent"]) for d in days],
                           every=every)
    )
    # The picker offers the agents with facts in the range (and the one shown, if they have none).
    agents = [(a["agent"]["id"], a["agent"]["name"]) for a in team["by_agent"]]
    if agent is not None and agent not in {a for a, _ in agents}:
        agents.append((agent, agent_name or ""))
    query = f"from={first.isoformat()}&to={last.isoformat()}" + (f"&agent={agent}" if agent else "")
    charts = [
        first_chart,
        charts_module.bars("First response per day (median, business minutes)",
                           [(dt.date.fromisoformat(d["day"]).strftime(label),
                             None if d["first_response_seconds"]["p50"] is None
                             else d["first_response_seconds"]["p50"] / 60) for d in days],
                           unit=" min", every=every),
        charts_module.bars("Ratings by score", [(f"{score} of 5", summary["rating"]["distribution"][str(score)])
                                                for score in range(1, 6)]),
    ]
    return render(request, "web/reports.html", {
        "first": first.isoformat(), "last": last.isoformat(), "summary": summary, "days": days, "charts": charts,
        "problem": problem, "query": query, "agents": agents, "agent": agent, "agent_name": agent_name if agent else "",
    }, status=status)
