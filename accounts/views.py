from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse

from accounts.principals import Principal, authenticate_agent, issue_agent_token, revoke_agent_token
from project.http import ApiError, api, field_str, json_body


@api(["POST"], None)
def agent_token(request: HttpRequest) -> JsonResponse:
    """Exchange an agent's username and password for an API token."""
    data = json_body(request)
    username = field_str(data, "username", max_length=150) or ""
    password = field_str(data, "password", max_length=4096) or ""
    user = authenticate_agent(username, password)
    if user is None:
        raise ApiError(401, "invalid_credentials", "wrong username or password, or not an agent")
    return JsonResponse({"token": issue_agent_token(user)}, status=201)


@api(["DELETE"], "agent")
def revoke_current_token(request: HttpRequest, principal: Principal) -> HttpResponse:
    """Revoke the bearer token this request carries."""
    _, _, token = request.headers.get("Authorization", "").partition(" ")
    if not token or not revoke_agent_token(token.strip()):
        raise ApiError(400, "no_token", "this request carries no agent token to revoke")
    return HttpResponse(status=204)
