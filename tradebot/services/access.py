"""Who may use the bot: /start registration, authorization of every message by access mode, and the admin
commands (/users, /approve, /block, /unblock, /stopall)."""

from __future__ import annotations

from ..db import write_tx
from ..models import User, UserConfig, utcnow
from .chat_rows import user_by_telegram_id
from .common import _action
from .users import _need_user, approve_user, block_user, list_users, refresh_names, reject_user, unblock_user
from .views import AccessDenied, Blocked, Conflict, NotRegistered, PendingApproval, RegisterResult, UserView


class AccessMixin:
    """Registration and authorization (part of Services)."""

    def is_admin_id(self, telegram_id: int) -> bool:
        return int(telegram_id) in set(self.cfg.telegram.admin_ids or [])

    def register(self, telegram_id: int, username: str | None, first_name: str | None) -> RegisterResult:
        """/start: create the user (or refresh names). Status depends on the access mode."""
        telegram_id = int(telegram_id)
        username = (username or None) and username[:64]
        first_name = (first_name or None) and first_name[:128]
        admin = self.is_admin_id(telegram_id)
        access = self.cfg.telegram.access
        with write_tx():
            user = User.get_or_none(User.telegram_id == telegram_id)
            if access == "allowlist" and not self._allowed(telegram_id):
                return RegisterResult(user, False, "refused")
            if user is not None:
                refresh_names(user, username, first_name)
                if user.is_admin != admin or (admin and user.status != "active"):
                    User.update(is_admin=admin, status="active" if admin else user.status).where(
                        User.id == user.id
                    ).execute()
                user = User.get_by_id(user.id)
                return RegisterResult(user, False, user.status)
            if admin or access == "open":
                status = "active"
            elif access == "allowlist":
                if telegram_id not in set(self.cfg.telegram.allowlist or []):
                    return RegisterResult(None, False, "refused")
                status = "active"
            else:
                status = "pending"
            user = User.create(
                telegram_id=telegram_id,
                username=None,
                first_name=first_name,
                status=status,
                is_admin=admin,
            )
            refresh_names(user, username, first_name)
        _action(User.get_by_id(user.id), "registered", status=status)
        return RegisterResult(user, True, status)

    def authorize(
        self, telegram_id: int, username: str | None = None, first_name: str | None = None, *,
        register: bool = False, names: bool = False,
    ) -> User:
        """The active user behind a chat id, or a refusal. `names`: the caller passes the sender's
        current @username and first name, stored when they changed. `register`: a first-time user is
        registered on the fly (any command works as a first message, as /start does): active in open
        mode (and for allowlisted ids), pending in approval mode (PendingApproval with new_user=True)."""
        user = user_by_telegram_id(telegram_id)
        if user is None:
            if self.cfg.telegram.access == "allowlist" and not self._allowed(telegram_id):
                raise AccessDenied("⛔ This bot is private.")
            if not register:
                raise NotRegistered("Please send /start first to register.")
            result = self.register(telegram_id, username, first_name)
            if result.status == "pending":
                raise PendingApproval(
                    "⏳ Your registration is waiting for an admin's approval.", new_user=result.created
                )
            if result.user is None or result.status != "active":
                raise AccessDenied("⛔ Access denied.")
            user = result.user
        elif names:
            refresh_names(user, username, first_name)
        if self.is_admin_id(telegram_id):
            if not user.is_admin or user.status != "active":
                User.update(is_admin=True, status="active").where(User.id == user.id).execute()
                user = User.get_by_id(user.id)
            return user
        if user.status == "blocked":
            raise Blocked("⛔ Access denied.")
        if user.status == "pending":
            raise PendingApproval("⏳ Your registration is waiting for an admin's approval.")
        if self.cfg.telegram.access == "allowlist" and not self._allowed(telegram_id):
            raise AccessDenied("⛔ This bot is private.")
        return user

    def is_member(self, telegram_id: int) -> bool:
        """An admin or an active user: a cheap check that never writes (used to route chat work)."""
        if self.is_admin_id(telegram_id):
            return True
        user = user_by_telegram_id(telegram_id)
        return user is not None and user.status == "active"

    def _allowed(self, telegram_id: int) -> bool:
        return int(telegram_id) in set(self.cfg.telegram.allowlist or []) or self.is_admin_id(telegram_id)

    def require_admin(self, user: User) -> None:
        if not self.is_admin_id(user.telegram_id):
            raise AccessDenied("That command is for admins only.")

    def admin_ids(self) -> list[int]:
        return [int(i) for i in (self.cfg.telegram.admin_ids or [])]


class AdminMixin:
    """Admin-only use cases (part of Services); each checks the caller's rights first."""

    def admin_list_users(self, admin: User, status: str | None = None) -> list[UserView]:
        self.require_admin(admin)
        return list_users(status)

    def admin_approve(self, admin: User, ref: int | str) -> User:
        self.require_admin(admin)
        return self._admin_did(admin, "approved", approve_user(ref))

    def admin_reject(self, admin: User, ref: int | str) -> User:
        self.require_admin(admin)
        return self._admin_did(admin, "rejected", reject_user(ref, self.manager))

    @staticmethod
    def _admin_did(admin: User, what: str, target: User) -> User:
        _action(admin, f"admin {what} a user", target=target.telegram_id, status=target.status)
        return target

    def admin_block(self, admin: User, ref: int | str) -> User:
        self.require_admin(admin)
        target = _need_user(ref)
        if target.id == admin.id or self.is_admin_id(target.telegram_id):
            raise Conflict("Admins cannot be blocked.")
        return self._admin_did(admin, "blocked", block_user(ref, self.manager))

    def admin_unblock(self, admin: User, ref: int | str) -> User:
        self.require_admin(admin)
        return self._admin_did(admin, "unblocked", unblock_user(ref))

    def admin_stop_all(self, admin: User) -> int:
        """Emergency switch: every pair of every user stops."""
        self.require_admin(admin)
        stopped = self.manager.stop_all()
        UserConfig.update(is_trading=False, updated_at=utcnow()).where(UserConfig.is_trading).execute()
        _action(admin, "admin stopped all trading", pairs=int(stopped or 0))
        return int(stopped or 0)

    def admin_running_count(self, admin: User) -> int:
        self.require_admin(admin)
        return UserConfig.select().where(UserConfig.is_trading).count()
