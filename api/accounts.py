from __future__ import annotations

from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse, JsonResponse

from accounts import presence, profiles, ratelimit, throttle
from accounts.errors import InvalidDisplayName, TooManyAttempts
from accounts.principals import Principal, authenticate_agent, issue_agent_token, revoke_agent_token
from api.errors import ApiError, error_response
from api.http import api, doc, field_str, json_body


@api(["POST"], None)
@doc("POST", "Log an agent in: an API token for a staff user's username and password", operation_id="logInAgent", body="AgentCredentials",
     responses={201: "AgentToken"}, errors=[(401, "invalid_credentials"), TooManyAttempts],
     description="Failed logins are throttled with the browser sign-in forms (`/accounts/login/`, `/admin/login/`), "
     f"which count in the same budgets: after {throttle.PAIR_FREE} failures from one client address on one username "
     f"({throttle.PAIR_FREE_UNDER_ATTACK} while that username has failed {throttle.ACCOUNT_UNDER_ATTACK} times from "
     f"any addresses), or {throttle.ADDRESS_FREE} from one address on any usernames, each further failure imposes a "
     f"wait ({throttle.FIRST_DELAY} s, doubling, at most {throttle.MAX_DELAY // 60} min) before the next attempt from "
     "there. An attempt during a wait answers `429 too_many_attempts`, whatever the password, with the seconds to "
     "wait in the `Retry-After` header and in the detail. The right password from another address is not refused.")
def agent_token(request: HttpRequest) -> JsonResponse:
    """Exchange an agent's username and password for an API token."""
    data = json_body(request)
    username = field_str(data, "username", max_length=150) or ""
    password = field_str(data, "password", max_length=4096) or ""
    try:
        attempt = throttle.begin(ratelimit.client_ip(request), username)
    except TooManyAttempts as refused:
        response = error_response(refused.status, refused.code, refused.detail)
        response["Retry-After"] = str(refused.retry_after)
        return response
    try:
        user = authenticate_agent(username, password)
    except BaseException:
        attempt.abandoned()
        raise
    if user is None:
        attempt.failed()
        raise ApiError(401, "invalid_credentials", "wrong username or password, or not an agent")
    attempt.succeeded()
    return JsonResponse({"token": issue_agent_token(user)}, status=201)


@api(["DELETE"], "agent")
@doc("DELETE", "Revoke the agent token this request carries", operation_id="revokeAgentToken", responses={204: None}, errors=[(400, "no_token")],
     description="`400 no_token` when the agent is authenticated by a session, not a token.")
def revoke_current_token(request: HttpRequest, principal: Principal) -> HttpResponse:
    """Revoke the bearer token this request carries."""
    _, _, token = request.headers.get("Authorization", "").partition(" ")
    if not token or not revoke_agent_token(token.strip()):
        raise ApiError(400, "no_token", "this request carries no agent token to revoke")
    return HttpResponse(status=204)


@api(["GET"], "agent")
@doc("GET", "The team: every active agent, with who is online", operation_id="listAgents", responses={200: "AgentList"},
     description="Every active staff user (the people a conversation can be assigned to), sorted by name; "
     "`online` while they have the dashboard open. `name` is what customers see; `username` (the login) is "
     "shown to agents only, to tell apart agents who chose no name.")
def agents(request: HttpRequest, principal: Principal) -> JsonResponse:
    """Every active agent: the choices for assigning a conversation."""
    found = presence.active_agents()
    return JsonResponse({"agents": [{"id": i, "name": n, "online": o, "username": u} for i, n, o, u in found]})


def _profile(p: profiles.Profile) -> dict[str, str]:
    return {"id": p.id, "username": p.username, "display_name": p.display_name, "name": p.name}


@api(["GET", "PATCH"], "agent")
@doc("GET", "The calling agent's profile", operation_id="getMyAgentProfile", responses={200: "AgentProfile"},
     description="`name` is what customers and the team see: `display_name`, else the full name the admin "
     f"gave, else \"{profiles.TEAM_NAME}\". Never the login `username`.")
@doc("PATCH", "Change the calling agent's display name", operation_id="updateMyAgentProfile", body="AgentProfileUpdate", responses={200: "AgentProfile"},
     errors=[InvalidDisplayName],
     description=f"`display_name`: up to {profiles.MAX_DISPLAY_NAME} characters after trimming (runs of spaces "
     "become one), printable text only (no control, formatting or line-separator characters); an empty string "
     "clears it. Customers see the new name on every message, the old ones included, from the next answer, "
     "frame, push or email on.")
def agent_me(request: HttpRequest, principal: Principal) -> JsonResponse:
    user = get_user_model().objects.select_related("agent_profile").get(pk=int(principal.id))
    if request.method == "PATCH":
        data = json_body(request)
        if "display_name" not in data:
            raise ApiError(400, "missing_field", "'display_name' is required (an empty string clears it)")
        if not isinstance(data["display_name"], str):
            raise InvalidDisplayName("'display_name' must be a string")
        return JsonResponse(_profile(profiles.set_display_name(user, data["display_name"])))
    return JsonResponse(_profile(profiles.profile_of(user)))
