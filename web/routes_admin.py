"""The administrator's start page: admins reconcile and simulate like finance and policy staff, and manage
accounts with `doudi users` or the API."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from doudi.accounts import WebSignIn
from web.pages import PageRoute, render, signed_in

router = APIRouter(route_class=PageRoute, include_in_schema=False)

Admin = Annotated[WebSignIn, Depends(signed_in("admin"))]


@router.get("/admin")
def admin_home(request: Request, signin: Admin) -> Response:
    return render(request, "admin.html")
