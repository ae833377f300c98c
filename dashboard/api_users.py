"""JSON API for accounts (admins only): list, create, change a role, delete, and their tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from dashboard.accounts import (
    Account,
    create_user,
    delete_user,
    find_account,
    list_accounts,
    set_role,
)
from dashboard.auth import RequireAdmin
from dashboard.bearer_tokens import TokenInfo, list_api_tokens, revoke_api_token
from dashboard.dependencies import MAX_ID, DatabaseDep, Text
from dashboard.password_rules import MAX_PASSWORD_CHARS
from dashboard.roles import Role

router = APIRouter(prefix="/api", tags=["accounts"], dependencies=[RequireAdmin])
Email = Annotated[str, Path(min_length=3, max_length=320, description="the account's address")]
TokenId = Annotated[int, Path(ge=1, le=MAX_ID, description="API token id")]


class AccountOut(BaseModel):
    id: int
    email: str
    role: Role
    created_at: datetime


class AccountCreate(BaseModel):
    email: Text = Field(min_length=3, max_length=320)
    role: Role
    password: Text = Field(max_length=MAX_PASSWORD_CHARS)


class RoleChange(BaseModel):
    role: Role


class TokenOut(BaseModel):
    id: int
    name: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None


def _account_out(account: Account) -> AccountOut:
    return AccountOut(
        id=account.id, email=account.email, role=account.role, created_at=account.created_at
    )


def _token_out(token: TokenInfo) -> TokenOut:
    return TokenOut(
        id=token.id,
        name=token.name,
        created_at=token.created_at,
        last_used_at=token.last_used_at,
        expires_at=token.expires_at,
    )


@router.get("/users", summary="Every account with its role")
def get_users(database: DatabaseDep) -> list[AccountOut]:
    return [_account_out(account) for account in list_accounts(database)]


@router.post("/users", status_code=201, summary="Make an account")
async def post_user(body: AccountCreate, database: DatabaseDep) -> AccountOut:
    # argon2 takes a while: off the event loop.
    user = await run_in_threadpool(create_user, database, body.email, body.password, role=body.role)
    return _account_out(find_account(database, user.email))


@router.put("/users/{email}/role", summary="Change an account's role")
def put_role(email: Email, body: RoleChange, database: DatabaseDep) -> AccountOut:
    set_role(database, email, body.role)
    return _account_out(find_account(database, email))


@router.delete(
    "/users/{email}", status_code=204, summary="Delete an account, its sessions and tokens"
)
def delete_account(email: Email, database: DatabaseDep) -> None:
    delete_user(database, email)


@router.get("/users/{email}/tokens", summary="An account's API tokens (never the secrets)")
def get_tokens(email: Email, database: DatabaseDep) -> list[TokenOut]:
    return [_token_out(token) for token in list_api_tokens(database, email)]


@router.delete("/tokens/{token_id}", status_code=204, summary="Revoke an API token")
def delete_token(token_id: TokenId, database: DatabaseDep) -> None:
    revoke_api_token(database, token_id)
