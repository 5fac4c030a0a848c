"""Staff login throttling: repeated wrong passwords lock out that account from that address."""

import datetime
import os
import re
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
import time_machine
from axes.models import AccessAttempt
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.factories import UserFactory

PASSWORD = "correct horse battery staple"
ATTACKER = "127.0.0.7"
COLLEAGUE = "127.0.0.8"


@pytest.fixture
def staff(db):
    return UserFactory(username="staff", is_staff=True, is_superuser=True)


def log_in(password, *, address=ATTACKER, username="staff", client=None):
    """Post the admin's login form from `address`; return the response."""
    client = client or Client(REMOTE_ADDR=address)
    return client.post(
        reverse("admin:login"),
        {"username": username, "password": password, "next": reverse("admin:index")},
    )


def logged_in(response):
    return response.status_code == 302 and response["Location"] == reverse("admin:index")


def fail_until_locked_out(*, address=ATTACKER, username="staff"):
    for attempt in range(1, 6):
        response = log_in(f"wrong guess {attempt}", address=address, username=username)
    return response


def test_a_wrong_password_is_refused_as_before(staff):
    response = log_in("wrong guess")

    assert response.status_code == 200
    assert "Please enter the correct username and password" in response.content.decode()


def test_five_wrong_passwords_lock_out_even_the_right_one(staff):
    with time_machine.travel(timezone.now(), tick=False):
        fifth = fail_until_locked_out()
        assert fifth.status_code == 429
        response = log_in(PASSWORD)

        assert not logged_in(response)
        assert response.status_code == 429
        page = " ".join(re.sub(r"<[^>]+>", "", response.content.decode()).split())
        assert "Too many failed logins for “staff” from your address." in page
        assert "(in 15 minutes)" in page
        retry_at = timezone.localtime() + datetime.timedelta(minutes=15)
        assert f"until {retry_at:%H:%M}" in page
        assert "An administrator can unlock your account now." in page
        assert 'id="site-name"' in response.content.decode()  # the admin's look
        assert response["Retry-After"] == str(15 * 60)


def test_a_failure_below_the_limit_does_not_stop_the_right_password(staff):
    for attempt in range(4):
        assert log_in(f"wrong guess {attempt}").status_code == 200

    assert logged_in(log_in(PASSWORD))


def test_the_account_still_logs_in_from_another_address(staff):
    fail_until_locked_out(address=ATTACKER)

    assert logged_in(log_in(PASSWORD, address=COLLEAGUE))
    assert log_in(PASSWORD, address=ATTACKER).status_code == 429


def test_the_address_still_logs_in_to_another_account(staff):
    UserFactory(username="colleague", is_staff=True)
    fail_until_locked_out(address=ATTACKER, username="staff")

    assert logged_in(log_in(PASSWORD, address=ATTACKER, username="colleague"))


def test_the_lockout_ends_after_the_lockout_time(staff):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        fail_until_locked_out()
    with time_machine.travel(start + datetime.timedelta(minutes=14), tick=False):
        # Tried again while locked out: refused, and the lockout is not extended.
        assert log_in(PASSWORD).status_code == 429
    with time_machine.travel(start + datetime.timedelta(minutes=15, seconds=1), tick=False):
        assert logged_in(log_in(PASSWORD))


def test_the_limit_and_lockout_time_follow_the_settings(staff, settings):
    settings.AXES_FAILURE_LIMIT = 2
    settings.AXES_COOLOFF_TIME = datetime.timedelta(minutes=1)

    log_in("wrong guess 1")
    response = log_in("wrong guess 2")

    assert response.status_code == 429
    assert "After 2 wrong passwords" in response.content.decode()
    assert "(in 1 minute)" in response.content.decode()


def test_an_admin_unlocks_the_account_in_the_admin(staff, client):
    fail_until_locked_out()
    client.force_login(UserFactory(username="boss", is_staff=True, is_superuser=True))

    attempts = client.get(reverse("admin:axes_accessattempt_changelist") + "?q=staff")
    assert attempts.status_code == 200
    assert ATTACKER in attempts.content.decode()
    # Deleting the attempt unlocks (the admin's "Delete selected access attempts").
    selected = list(AccessAttempt.objects.filter(username="staff").values_list("pk", flat=True))
    response = client.post(
        reverse("admin:axes_accessattempt_changelist"),
        {"action": "delete_selected", "_selected_action": selected, "post": "yes"},
    )
    assert response.status_code == 302

    assert logged_in(log_in(PASSWORD))


def test_an_admin_unlocks_the_account_with_a_command(staff):
    fail_until_locked_out()

    call_command("axes_reset_username", "staff", stdout=StringIO())

    assert logged_in(log_in(PASSWORD))


def test_the_locked_out_address_is_the_one_trusted_proxies_name(staff, settings):
    """Behind a proxy the lockout follows the client's address, not the proxy's: one
    attacker does not lock out everyone behind the same load balancer."""
    settings.TRACKER_TRUSTED_PROXIES = 1
    behind_proxy = {"REMOTE_ADDR": "127.0.0.1"}
    for attempt in range(5):
        Client(**behind_proxy, HTTP_X_FORWARDED_FOR=ATTACKER).post(
            reverse("admin:login"), {"username": "staff", "password": f"wrong {attempt}"}
        )

    colleague = Client(**behind_proxy, HTTP_X_FORWARDED_FOR=COLLEAGUE)
    assert logged_in(log_in(PASSWORD, client=colleague))
    attacker = Client(**behind_proxy, HTTP_X_FORWARDED_FOR=ATTACKER)
    assert log_in(PASSWORD, client=attacker).status_code == 429


def test_the_operator_sets_the_limit_and_lockout_time_in_the_environment():
    probe = (
        "import django; from django.conf import settings; django.setup(); "
        "print(settings.AXES_FAILURE_LIMIT, settings.AXES_COOLOFF_TIME.total_seconds())"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "TRACKER_LOGIN_FAILURE_LIMIT": "3",
        "TRACKER_LOGIN_LOCKOUT_MINUTES": "30",
    }
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env=env,
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        check=True,
    )

    assert result.stdout.split() == ["3", "1800.0"]
