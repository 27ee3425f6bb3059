from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse

from accounts import ratelimit
from accounts.principals import Principal, authenticate_agent, issue_agent_token, revoke_agent_token
from api.errors import ApiError
from api.http import api, doc, field_str, json_body

# Failed agent logins allowed per client address and username per window.
LOGIN_FAILURES = 10
LOGIN_WINDOW = 15 * 60


@api(["POST"], None)
@doc("POST", "Log an agent in: an API token for a staff user's username and password", body="AgentCredentials",
     responses={201: "AgentToken"}, errors=[(401, "invalid_credentials"), (429, "too_many_attempts")],
     description=f"{LOGIN_FAILURES} failed logins per client address and username in {LOGIN_WINDOW // 60} minutes "
     "refuse further attempts with 429.")
def agent_token(request: HttpRequest) -> JsonResponse:
    """Exchange an agent's username and password for an API token."""
    data = json_body(request)
    username = field_str(data, "username", max_length=150) or ""
    password = field_str(data, "password", max_length=4096) or ""
    key = f"{ratelimit.client_ip(request)}:{username.lower()}"
    if not ratelimit.peek("agent-login", key, limit=LOGIN_FAILURES, window=LOGIN_WINDOW).allowed:
        raise ApiError(429, "too_many_attempts", "too many failed logins; try again later")
    user = authenticate_agent(username, password)
    if user is None:
        ratelimit.hit("agent-login", key, limit=LOGIN_FAILURES, window=LOGIN_WINDOW)
        raise ApiError(401, "invalid_credentials", "wrong username or password, or not an agent")
    return JsonResponse({"token": issue_agent_token(user)}, status=201)


@api(["DELETE"], "agent")
@doc("DELETE", "Revoke the agent token this request carries", responses={204: None}, errors=[(400, "no_token")],
     description="`400 no_token` when the agent is authenticated by a session, not a token.")
def revoke_current_token(request: HttpRequest, principal: Principal) -> HttpResponse:
    """Revoke the bearer token this request carries."""
    _, _, token = request.headers.get("Authorization", "").partition(" ")
    if not token or not revoke_agent_token(token.strip()):
        raise ApiError(400, "no_token", "this request carries no agent token to revoke")
    return HttpResponse(status=204)
