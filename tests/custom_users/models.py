"""Custom user models: a UUID key, a string key, a default manager that hides rows."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.db import models


class UserManager(BaseUserManager["AbstractBaseUser"]):
    def create_user(self, username: str, password: str | None = None, **fields: Any) -> Any:
        user = self.model(username=username, **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user


class UUIDUser(AbstractBaseUser):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    username = models.CharField(max_length=40, unique=True)
    is_active = models.BooleanField(default=True)
    nickname = models.CharField(max_length=40, blank=True)
    joined = models.DateTimeField(auto_now_add=True)
    score = models.DecimalField(max_digits=6, decimal_places=2, default=0)

    objects = UserManager()
    USERNAME_FIELD = "username"


class StringUser(AbstractBaseUser):
    username = models.CharField(max_length=40, primary_key=True)
    is_active = models.BooleanField(default=True)
    profile = models.JSONField(default=dict)

    objects = UserManager()
    USERNAME_FIELD = "username"


class VisibleManager(UserManager):
    """Hides users marked hidden: a row the session's join would find, Django's get_user not."""

    def get_queryset(self) -> models.QuerySet[Any]:
        return super().get_queryset().filter(hidden=False)


class ManagedUser(AbstractBaseUser):
    username = models.CharField(max_length=40, unique=True)
    is_active = models.BooleanField(default=True)
    hidden = models.BooleanField(default=False)

    objects = VisibleManager()
    everyone = UserManager()
    USERNAME_FIELD = "username"
