"""``batchtransform ui`` as a user runs it: a process serving the embedded service's home on
127.0.0.1, signed in once by the URL it prints, its API usable with the pair it prints."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest

from batchtransform.api.ui.sessions import COOKIE_NAME


@pytest.fixture
def ui_process(batchtransform_home: Path) -> Iterator[tuple[str, str, str, str]]:
    """The running command, and what it printed: the sign-in URL, its address, key, secret."""
    env = {**os.environ, "BATCHTRANSFORM_HOME": str(batchtransform_home)}
    process = subprocess.Popen(
        [sys.executable, "-m", "batchtransform.cli", "ui", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        first, second = process.stdout.readline(), process.stdout.readline()
        found = re.search(r"open (http://\S+/ui/login\?token=\S+) ", first)
        api = re.search(
            r"--endpoint-url (\S+) .* access key id (\S+) .* secret access key (\S+)", second
        )
        assert found and api, (first, second, process.stderr and process.stderr.read())
        yield found.group(1), api.group(1), api.group(2), api.group(3)
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)


def test_the_ui_command_signs_in_once_and_serves_the_api(
    ui_process: tuple[str, str, str, str],
) -> None:
    url, endpoint, key, secret = ui_process
    assert url.startswith("http://127.0.0.1:")
    with httpx.Client() as browser:
        signed = browser.get(url)
        assert signed.status_code == 303
        assert COOKIE_NAME in signed.headers["Set-Cookie"]
        page = browser.get(f"{endpoint}/ui/")
        assert page.status_code == 200 and "Transform jobs" in page.text
    with httpx.Client() as other_user:
        again = other_user.get(url)
        assert again.status_code == 200 and "This sign-in link was used" in again.text
        assert other_user.get(f"{endpoint}/ui/").status_code == 303
    client = boto3.session.Session().client(
        "sagemaker",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
    )
    try:
        assert client.list_transform_jobs()["TransformJobSummaries"] == []
    finally:
        client.close()
