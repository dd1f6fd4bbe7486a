"""The console's S3 page in a real browser: create a bucket, upload a file in parts from the file picker, drill
down through folders to a job's model.tar.gz (Lab 2's last step), download and delete it."""

from __future__ import annotations

import os

import boto3
import pytest
import requests

from browser import Page, start_browser
from helpers import KEY, SECRET, Server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("s3page")
    server = Server(tmp / "data").start()
    driver = start_browser()
    try:
        yield Page(driver, server.url, tmp / "screenshots"), server, tmp
    finally:
        driver.quit()
        server.stop()


def test_drill_down_into_the_bucket_to_find_model_tar_gz(world):
    page, server, tmp = world
    page.open("/console/login")
    page.fill("access_key_id", KEY)
    page.fill("secret_access_key", SECRET)
    page.by_id("sign-in").click()
    page.wait(lambda: page.path() == "/console/jobs", "the training jobs page")

    page.open("/console/s3")
    page.fill("bucket", "Bad_Name")
    page.by_id("create-bucket").click()
    page.wait(lambda: "is not valid" in page.by_id("s3-error").text, "the naming rule, said")
    page.fill("bucket", "drill-down")
    page.by_id("create-bucket").click()
    page.wait(lambda: page.path() == "/console/s3/drill-down", "the new bucket's page")

    upload = tmp / "weights.bin"
    upload.write_bytes(os.urandom(9 * 1024 * 1024))  # two parts of the console's 5 MiB
    picker = page.by_id("s3-file")
    page.driver.execute_script("arguments[0].hidden = false", picker)
    picker.send_keys(str(upload))
    page.wait(lambda: page.find('tr[data-key="weights.bin"]'), "the uploaded file in the list", timeout=60)
    assert "9,437,184" in page.find('tr[data-key="weights.bin"]').text

    s3 = boto3.client(
        "s3", endpoint_url=server.url, region_name="us-east-1", aws_access_key_id=KEY, aws_secret_access_key=SECRET
    )
    key = "output/job-1/output/model.tar.gz"
    s3.put_object(Bucket="drill-down", Key=key, Body=b"a model")
    page.open("/console/s3/drill-down")
    for folder in ("output/", "output/job-1/", "output/job-1/output/"):
        page.wait(lambda f=folder: page.find(f'tr[data-folder="{f}"] a'), f"the folder {folder}").click()
    row = page.wait(lambda: page.find(f'tr[data-key="{key}"]'), "model.tar.gz")
    assert f"s3://drill-down/{key}" in row.text
    href = row.find_element("css selector", "a").get_attribute("href")
    cookies = {c["name"]: c["value"] for c in page.driver.get_cookies()}
    assert requests.get(href, cookies=cookies).content == b"a model"
    row.find_element("css selector", "button").click()
    page.wait(lambda: not page.all(f'tr[data-key="{key}"]'), "the object deleted")
    assert s3.list_objects_v2(Bucket="drill-down", Prefix="output/")["KeyCount"] == 0
