"""Every Flask extension object, created unbound; `create_app` binds them."""

from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
csrf = CSRFProtect()
migrate = Migrate()
login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "Please sign in to continue."
# Session protection is the console's own (app/web/access.py `same_browser`): Flask-Login's trusts a
# client-sent X-Forwarded-For.
login_manager.session_protection = None
