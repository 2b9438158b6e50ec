"""People: the users page (admins), my account (everyone) and one-time set-password links."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from app import services
from app.accounts import people, second_factor
from app.extensions import db
from app.store import audit
from app.store.models import ApiToken, User, utcnow
from app.web.access import (
    acting_role,
    client_address,
    end_session,
    proven_now,
    proven_recently,
    role_required,
    start_session,
)
from app.web.forms import ActionForm, require_submitted
from app.web.identity import prove_identity
from app.web.people.forms import (
    ROLE_CHOICES,
    ROLE_DUTIES,
    AddUserForm,
    ChangePasswordForm,
    CodeConfirmForm,
    RoleForm,
    SetPasswordForm,
    TargetRoleForm,
    TokenForm,
)

bp = Blueprint("people", __name__)


def user_or_404(user_id: int) -> User:
    return db.session.get(User, user_id) or abort(404, "no such user")


def set_password_url(secret: str) -> str:
    """The secret goes after '#': browsers never send the fragment, so no access log or proxy sees it."""
    return url_for("people.set_password", _external=True) + "#" + secret


@bp.route("/users", methods=["GET", "POST"])
@role_required("admin")
def users():
    form = AddUserForm()
    link = None
    status = 200
    if form.validate_on_submit():
        password = form.password.data or None  # empty: the user gets a set-password link instead
        user = people.create_user(form.username.data, form.role.data, password, current_user.username)
        if password:
            flash(f"Added {user.role} {user.username}.", "ok")
            return redirect(url_for("people.users"), 303)
        link = set_password_url(people.issue_set_password_link(user, current_user.username))
        flash(f"Added {user.role} {user.username}. Send them the set-password link below (shown once).", "ok")
        form = AddUserForm(formdata=None)  # empty again, for the next person
    elif request.method == "POST":
        status = 400
    return users_page(form, link), status


def users_page(form: AddUserForm, link: str | None) -> str:
    """The users page: everyone, the add form, and a one-time link when one was just made."""
    everyone = db.session.execute(db.select(User).order_by(User.username)).scalars().all()
    return render_template(
        "people/users.html", users=everyone, form=form, link=link, role_choices=ROLE_CHOICES, action_form=ActionForm(),
        target_names=target_names(), target_role_form=TargetRoleForm(target_names(), formdata=None),
        role_duties=ROLE_DUTIES, kept_on={u.id: why for u in everyone if (why := not_disableable(u))},
    )  # fmt: skip


def not_disableable(user: User) -> str | None:
    """Why "Disable" is not offered for `user`: your own account, or the last active admin; None otherwise."""
    if user.id == current_user.id and user.active:
        return "This is your own account: another admin can disable it."
    lockout = people.lockout(user)
    return f"{lockout[0].upper()}{lockout[1:]}: make someone else admin first." if lockout else None


def target_names() -> list[str]:
    return [t.name for t in services.console_settings().targets]


@bp.route("/users/<int:user_id>/role", methods=["POST"])
@role_required("admin")
def change_role(user_id: int):
    user, form = user_or_404(user_id), require_submitted(RoleForm())
    return _apply(lambda: people.change_role(user, form.role.data, current_user.username),
                  f"{user.username} is now {form.role.data}.")  # fmt: skip


@bp.route("/users/<int:user_id>/target-role", methods=["POST"])
@role_required("admin")
def change_target_role(user_id: int):
    user, form = user_or_404(user_id), require_submitted(TargetRoleForm(target_names()))
    target, role = form.target.data, form.role.data
    return _apply(lambda: people.grant_target_role(user, target, role, current_user.username, target_names()),
                  f"{user.username} is now {user.role if role == people.GLOBAL else role} on {target}.")


@bp.route("/users/<int:user_id>/active", methods=["POST"])
@role_required("admin")
def toggle_active(user_id: int):
    user = user_or_404(user_id)
    require_submitted(ActionForm())
    active = not user.active
    if not active and user.id == current_user.id:
        return _apply(lambda: _refuse("you cannot disable your own account; another admin can"), "")
    return _apply(lambda: people.set_active(user, active, current_user.username),
                  f"{user.username} is {'enabled' if active else 'disabled'}.")  # fmt: skip


def _refuse(why: str) -> None:
    raise people.PeopleError(why)


def _apply(change, message: str):
    try:
        change()
        flash(message, "ok")
    except people.PeopleError as exc:
        audit.record("user.change", "refused", username=current_user.username, detail=str(exc),
                     address=client_address())  # fmt: skip
        flash(f"Not changed: {exc}.", "error")
    return redirect(url_for("people.users"), 303)


@bp.route("/users/<int:user_id>/reset", methods=["POST"])
@role_required("admin")
def reset_password(user_id: int):
    user = user_or_404(user_id)
    require_submitted(ActionForm())
    if user.is_sso:
        return _apply(lambda: people.issue_set_password_link(user, current_user.username), "")
    link = set_password_url(people.issue_set_password_link(user, current_user.username))
    flash(f"A set-password link for {user.username} (valid {people.SET_PASSWORD_LINK_HOURS} hours, shown once):", "ok")
    return users_page(AddUserForm(formdata=None), link)


@bp.route("/users/<int:user_id>/second-factor/reset", methods=["POST"])
@role_required("admin")
def reset_second_factor(user_id: int):
    """A lost phone: the user's two-factor codes are removed, their sessions end, and they enrol again."""
    user = user_or_404(user_id)
    require_submitted(ActionForm())
    second_factor.reset(user, current_user.username, client_address())
    flash(f"Two-factor codes of {user.username} are reset; they set them up again at their next sign-in.", "ok")
    return redirect(url_for("people.users"), 303)


@bp.route("/set-password/", methods=["GET", "POST"])
def set_password():
    """Where a set-password link leads; the secret comes in the form (see SetPasswordForm), never the URL."""
    form = SetPasswordForm()
    if form.validate_on_submit():
        user = people.user_for_set_password(form.secret.data.strip())
        if user is None:
            abort(404, "this link is unknown, used or expired; ask an admin for a new one")
        people.set_password(user, form.new.data, changed_by=user.username)
        end_session()  # whoever is signed in in this browser signs in again, with the new password
        flash("Your password is set. Sign in with it.", "ok")
        return redirect(url_for("auth.login"), 303)
    return render_template("people/set_password.html", form=form), 400 if request.method == "POST" else 200


@bp.route("/account", methods=["GET", "POST"])
@role_required("viewer")
def account():
    me = current_user._get_current_object()
    up_to = acting_role()  # a session (or token) acting as less than its owner makes no more than that
    password_form = ChangePasswordForm(prefix="pw")
    token_form = TokenForm(up_to, prefix="token")
    needs_proof = not me.is_sso and not proven_recently()
    new_token = None
    status = 200
    if request.method == "POST" and "pw-submit" in request.form and current_user.is_sso:
        abort(400, "single sign-on accounts have no password here")
    if request.method == "POST" and "pw-submit" in request.form:
        if password_form.validate_on_submit():
            # Counted like a failed sign-in: a stolen session must not be a way to guess the password.
            problem = prove_identity(me, password_form.current.data, "user.password", password_only=True)
            if problem is None:
                people.set_password(me, password_form.new.data, me.username)
                start_session(me)  # every other session ended; this one goes on, under a new id
                proven_now()
                flash("Your password is changed. You are signed out everywhere else, and your API tokens "
                      "are revoked.", "ok")  # fmt: skip
                return redirect(url_for("people.account"), 303)
            password_form.current.errors.append(problem)
        status = 400
    elif request.method == "POST" and "token-submit" in request.form:
        if token_form.validate_on_submit() and token_proof_given(me, token_form, needs_proof):
            needs_proof = False
            days = token_form.days
            expires = token_expiry(me, utcnow() + timedelta(days=days) if days else None)
            new_token = people.create_token(me, token_form.name.data, token_form.role.data, expires, me.username,
                                            cap=up_to)  # fmt: skip
            token_form = TokenForm(up_to, prefix="token", formdata=None)  # empty again: the token is made
        else:
            status = 400
    tokens = (
        db.session.execute(
            db.select(ApiToken).where(ApiToken.user_id == current_user.id).order_by(ApiToken.created_at.desc())
        )
        .scalars()
        .all()
    )
    return render_template(
        "people/account.html", password_form=password_form, token_form=token_form, tokens=tokens,
        new_token=new_token, action_form=ActionForm(), now=utcnow(), needs_proof=needs_proof,
        oidc_hours=services.settings().oidc.session_hours if me.is_sso and services.settings().oidc else None,
        codes_left=second_factor.recovery_codes_left(current_user),
        second_factor_required=second_factor.required_for(current_user, services.settings()),
    ), status  # fmt: skip


def token_proof_given(me: User, form: TokenForm, needed: bool) -> bool:
    """A local user makes a token only with their password (or a code) given in the last few minutes."""
    if not needed:
        return True
    if not form.proof.data:
        problem = "Give your password (or a code) first."
        audit.record("token.create", "refused", username=me.username, target=me.username, detail=problem,
                     address=client_address())  # fmt: skip
    else:
        problem = prove_identity(me, form.proof.data, "token.create")
    if problem:
        form.proof.errors.append(problem)
    return problem is None


def token_expiry(me: User, asked: datetime | None) -> datetime | None:
    """A single sign-on user's token ends OIDC_SESSION_HOURS after their last sign-in at the latest (and
    stops there in any case: app/web/auth); shown so on the page."""
    oidc = services.settings().oidc
    if not me.is_sso or oidc is None:
        return asked
    bound = (me.last_login_at or utcnow()) + timedelta(hours=oidc.session_hours)
    return min(asked, bound) if asked else bound


@bp.route("/account/two-factor", methods=["GET", "POST"])
@role_required("viewer")
def second_factor_page():
    """Enrolment: a QR code and the secret as text, confirmed with a code; then the recovery codes, once."""
    me = current_user._get_current_object()
    if me.is_sso:
        abort(404, "single sign-on accounts use their identity provider's second factor")
    if me.has_second_factor:
        return redirect(url_for("people.account"))
    settings = services.settings()
    form = CodeConfirmForm()
    status = 200
    if form.validate_on_submit():
        codes = second_factor.confirm_enrolment(me, form.code.data, settings, client_address())
        if codes is not None:
            return render_template("people/recovery_codes.html", codes=codes, action_form=ActionForm())
        form.code.errors.append("That code does not match; check the time on your phone and try the next one.")
        status = 400
    elif request.method == "POST":
        status = 400
    secret = second_factor.enrolment_secret(me, settings)
    return render_template(
        "people/two_factor.html", form=form, secret=secret, qr=second_factor.qr_code_data_uri(me, secret, settings),
        required=second_factor.required_for(me, settings),
    ), status  # fmt: skip


RECOVERY_CODE = re.compile(r"[a-z2-9]{4}(-[a-z2-9]{4}){3}")


@bp.route("/account/recovery-codes.txt", methods=["POST"])
@role_required("viewer")
def recovery_codes_file():
    """The recovery codes just shown, as a text file to keep: the page posts them back (they are stored only
    as digests, so the server cannot make them again), and only well-formed codes are written."""
    require_submitted(ActionForm())
    codes = [c for c in request.form.getlist("code")[: second_factor.RECOVERY_CODES] if RECOVERY_CODE.fullmatch(c)]
    if not codes:
        abort(400, "No recovery codes were sent; they are shown only once, after setting up two-factor codes")
    text = (
        f"pgconsole recovery codes for {current_user.username} ({request.host})\n"
        "Each works once, in place of a code from your authenticator app.\n\n" + "\n".join(codes) + "\n"
    )
    return Response(text, mimetype="text/plain", headers={
        "Content-Disposition": 'attachment; filename="pgconsole-recovery-codes.txt"',
        "Cache-Control": "no-store", "Pragma": "no-cache",
    })  # fmt: skip


@bp.route("/account/sign-out-everywhere", methods=["POST"])
@role_required("viewer")
def sign_out_everywhere():
    require_submitted(ActionForm())
    people.sign_out_everywhere(current_user._get_current_object(), client_address())
    end_session()
    flash("Signed out everywhere, this browser included. Your API tokens are revoked.", "info")
    return redirect(url_for("auth.login"), 303)


@bp.route("/account/tokens/<int:token_id>/revoke", methods=["POST"])
@role_required("viewer")
def revoke_token(token_id: int):
    token = db.session.get(ApiToken, token_id)
    if token is None or token.user_id != current_user.id:
        abort(404, "no such token")
    require_submitted(ActionForm())
    people.revoke_token(token, current_user.username)
    flash(f"Token {token.name!r} is revoked.", "ok")
    return redirect(url_for("people.account"), 303)
