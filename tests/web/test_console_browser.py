"""The console in a real browser (Debian's chromium through chromium-driver): Labs 1-3 without boto3.

One scenario, in the order a workshop goes: sign in, create a job through the form (a bad hyperparameter
first: its error appears at the field), watch it train (status, chart, log), filter the log, clone it,
compare the two, create a model, an endpoint configuration and an endpoint, try an image, stop a running
job, sign out. The pages it passes through are photographed (``ROOST_SCREENSHOTS``: docs/console).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from browser import SCREENSHOTS_ENV, Page, start_browser
from helpers import COLOURS, KEY, SECRET, Server, make_rec_split, training_request

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("console")
    data = make_rec_split(tmp, per_class=12)
    server = Server(tmp / "data").start()
    driver = start_browser()
    shots = Path(os.environ.get(SCREENSHOTS_ENV) or tmp / "screenshots")
    try:
        yield Page(driver, server.url, shots), server, data, tmp
    finally:
        driver.quit()
        server.stop()


def _sign_in(page: Page) -> None:
    page.open("/")
    page.driver.delete_all_cookies()  # a fresh session, even after a test that stopped before signing out
    page.open("/")
    page.wait(lambda: "/console/login" in page.driver.current_url, "the sign-in page")
    page.fill("access_key_id", KEY)
    page.fill("secret_access_key", "not-the-secret")
    page.by_id("sign-in").click()
    page.wait(lambda: "not this server's" in page.find(".error").text, "the refusal of a wrong secret")
    page.fill("access_key_id", KEY)
    page.fill("secret_access_key", SECRET)
    page.by_id("sign-in").click()
    page.wait(lambda: page.path() == "/console/jobs", "the training jobs page")


HYPERPARAMETERS = {
    "num_classes": "3",
    "num_training_samples": "27",
    "image_shape": "3,16,16",
    "num_layers": "8",
    "mini_batch_size": "8",
    "learning_rate": "0.05",
}


def _fill_job_form(page: Page, name: str, train: Path, val: Path, output: Path) -> None:
    page.fill("trainingJobName", name)
    page.fill("outputDataConfig.s3OutputPath", output.as_uri())
    page.fill("inputDataConfig.1.member.dataSource.s3DataSource.s3Uri", str(train))
    page.fill("inputDataConfig.2.member.dataSource.s3DataSource.s3Uri", str(val))
    for key, value in HYPERPARAMETERS.items():
        page.fill(f"hyperParameters.{key}", value)


def _error_at(page: Page, field: str) -> str:
    return page.by_id(f"err-{field}").text


def test_labs_in_the_browser(world):
    page, server, (train, val, n), tmp = world
    assert n == 27
    _sign_in(page)

    # ------------------------------------------------------------------ create, with a bad value first
    page.by_id("create-job").click()
    page.wait(lambda: page.by_id("job-form"), "the create form")
    assert page.by_id("hyperParameters.num_layers").get_attribute("value") == "152"  # the schema's default
    _fill_job_form(page, "console-a", train, val, tmp / "output")
    page.fill("hyperParameters.epochs", "three")
    page.wait(lambda: "expected an integer" in _error_at(page, "hyperParameters.epochs"), "the as-you-type error")
    assert _error_at(page, "hyperParameters.num_layers") == ""
    page.screenshot("create-training-job")
    page.by_id("submit-job").click()  # the server refuses it too, and says so at the same field
    page.wait(lambda: "is not valid" in _error_at(page, "hyperParameters.epochs"), "the API's error at the field")
    assert page.by_id("hyperParameters.learning_rate").get_attribute("value") == "0.05"  # what was typed stays
    page.fill("hyperParameters.epochs", "4")
    page.wait(lambda: _error_at(page, "hyperParameters.epochs") == "", "the error to clear")
    page.by_id("submit-job").click()
    page.wait(lambda: page.path() == "/console/jobs/console-a", "the job's page")

    # ------------------------------------------------------------------ watch it train
    seen_points, seen_status = set(), set()

    def completed() -> bool:
        seen_points.add(int(page.by_id("chart-accuracy").get_attribute("data-points")))
        seen_status.add(page.by_id("job-status").text)
        return page.by_id("job-status").text == "Completed"

    page.wait(completed, "the job to complete", timeout=180)
    assert "InProgress" in seen_status, seen_status  # the page changed status by itself, without a reload
    page.wait(lambda: page.by_id("chart-accuracy").get_attribute("data-points") == "4", "four epochs on the chart")
    assert len(seen_points) >= 2, f"the chart never gained points while the page was open: {seen_points}"
    page.wait(lambda: page.all("#per-class tbody tr"), "the per-class table")
    assert len(page.all("#confusion tbody tr")) == 3
    # the channels are .rec files: the classes.json beside them travelled into the job, so the table names classes
    names = json.loads((train.parent / "classes.json").read_text())
    assert [row.text.split()[1] for row in page.all("#per-class table.compact tbody tr")] == names
    page.wait(lambda: len(page.all("#log .line")) > 10, "the log")
    page.screenshot("training-job")

    page.fill("log-filter-input", '"Validation-accuracy"')
    page.wait(
        lambda: (
            len(page.all("#log .line")) == 4
            and all("Validation-accuracy" in line.text for line in page.all("#log .line"))
        ),
        "only the four Validation-accuracy lines",
    )
    assert "filter=" in page.driver.current_url  # the filtered view can be linked to

    # ------------------------------------------------------------------ clone, then compare
    page.by_id("clone-job").click()
    page.wait(lambda: page.by_id("trainingJobName").get_attribute("value") == "console-a-clone-1", "the clone form")
    assert page.by_id("hyperParameters.image_shape").get_attribute("value") == "3,16,16"
    page.fill("hyperParameters.learning_rate", "0.02")
    page.by_id("submit-job").click()
    page.wait(lambda: page.path() == "/console/jobs/console-a-clone-1", "the clone's page")
    page.wait(lambda: page.by_id("job-status").text == "Completed", "the clone to complete", timeout=180)

    page.open("/console/jobs")
    for name in ("console-a", "console-a-clone-1"):
        page.click(f'tr[data-job="{name}"] input[type=checkbox]')
    page.screenshot("training-jobs")
    page.by_id("compare-selected").click()
    page.wait(lambda: int(page.by_id("chart-compare").get_attribute("data-points")) == 8, "both curves")
    page.by_id("only-differing").click()
    page.wait(lambda: "diff=1" in page.driver.current_url, "the differing hyperparameters")
    rows = [r.text for r in page.all("#compare-hyperparameters tbody tr.differs")]
    assert len(rows) == 1 and rows[0].startswith("learning_rate"), rows
    page.screenshot("compare")

    # ------------------------------------------------------------------ model, endpoint, try it
    page.open("/console/jobs/console-a")
    page.click("#create-model", "Create model")  # again if the live page replaced it
    page.wait(lambda: page.find('#models-list tr[data-name="console-a"]'), "the model in the list")
    page.open("/console/endpoint-configs")
    page.fill("endpointConfigName", "console-config")
    page.by_id("create-config-submit").click()
    page.wait(lambda: page.find('#endpoint-configs-list tr[data-name="console-config"]'), "the configuration")
    page.open("/console/endpoints")
    page.fill("endpointName", "console-endpoint")
    page.by_id("create-endpoint-submit").click()
    page.click('#endpoints-list tr[data-name="console-endpoint"] a', "the endpoint", timeout=60)
    page.wait(lambda: page.by_id("endpoint-status").text == "InService", "InService, live", timeout=120)
    image = tmp / "red.png"
    pixels = np.full((20, 24, 3), 40, np.uint8)
    pixels[4:14, 6:16] = COLOURS[0][::-1]
    cv2.imwrite(str(image), pixels)
    page.wait(lambda: page.by_id("try-submit").is_enabled(), "the Classify button")
    page.by_id("try-image").send_keys(str(image))
    page.by_id("try-submit").click()
    page.wait(lambda: len(page.all("#try-result tbody tr")) == 3, "the top classes")
    probabilities = [float(r.find_elements("css selector", "td")[2].text) for r in page.all("#try-result tbody tr")]
    assert probabilities == sorted(probabilities, reverse=True) and abs(sum(probabilities) - 1) < 0.01
    page.screenshot("endpoint-try-it")

    # ------------------------------------------------------------------ stop a running job
    long = training_request((train, val, n), tmp, name="console-long", epochs=5000)
    server.client().create_training_job(**long)
    page.open("/console/jobs/console-long")
    page.wait(lambda: page.by_id("secondary-status").text == "Training", "training", timeout=120)
    page.open("/console/jobs")
    page.click('tr[data-job="console-long"] button[hx-post$="/stop"]', "Stop in the list")
    page.driver.switch_to.alert.accept()  # hx-confirm asks first
    page.wait(lambda: "Stopp" in page.find('tr[data-job="console-long"] .status').text, "the list showing the stop")
    page.open("/console/jobs/console-long")
    page.wait(lambda: page.by_id("job-status").text == "Stopped", "Stopped", timeout=60)

    # ------------------------------------------------------------------ Lab 1's data page
    page.open("/console/data")
    page.fill("data-location", str(tmp / "images"))
    page.by_id("explore").click()
    page.wait(lambda: page.by_id("data-report"), "the report")
    assert len(page.all("#class-counts tbody tr")) == 3
    assert "num_classes=3" in page.by_id("data-report").text
    assert page.by_id("sample-grid").get_attribute("naturalWidth") != "0"
    page.screenshot("data")
    page.fill("data-location", "/etc")
    page.by_id("explore").click()
    page.wait(lambda: "outside the folders this server reads" in page.by_id("data-error").text, "the refusal")

    # ------------------------------------------------------------------ sign out: the pages refuse
    page.by_id("sign-out").click()
    page.wait(lambda: "/console/login" in page.driver.current_url, "the sign-in page")
    page.open("/console/jobs/console-a")
    page.wait(lambda: "/console/login" in page.driver.current_url, "a redirect to sign in")
    assert page.by_id("sign-in") and not page.all("#job-status")


def test_a_tuning_job_in_the_browser(world):
    """Seed 001's "more time": a tuning job from the console's form, its page filling in as its jobs run."""
    from selenium.webdriver.support.ui import Select

    page, server, (train, val, n), tmp = world
    _sign_in(page)
    page.open("/console/tuning-jobs")
    page.by_id("create-tuning-job").click()
    page.wait(lambda: page.by_id("tuning-form"), "the tuning form")
    page.fill("hyperParameterTuningJobName", "console-tuning")
    Select(page.by_id("hyperParameterTuningJobConfig.strategy")).select_by_visible_text("Random")
    page.fill("hyperParameterTuningJobConfig.resourceLimits.maxNumberOfTrainingJobs", "3")
    page.fill("hyperParameterTuningJobConfig.randomSeed", "4")
    page.fill("trainingJobDefinition.outputDataConfig.s3OutputPath", (tmp / "tuning-output").as_uri())
    page.fill("trainingJobDefinition.inputDataConfig.1.member.dataSource.s3DataSource.s3Uri", str(train))
    page.fill("trainingJobDefinition.inputDataConfig.2.member.dataSource.s3DataSource.s3Uri", str(val))
    for key, value in {**HYPERPARAMETERS, "epochs": "3"}.items():
        page.fill(f"trainingJobDefinition.staticHyperParameters.{key}", value)
    # a row becomes a range: its value box gives way to the range's ends
    assert page.by_id("range.learning_rate.min").is_displayed() is False
    Select(page.by_id("range.learning_rate.kind")).select_by_visible_text("Continuous")
    page.wait(lambda: page.by_id("range.learning_rate.min").is_displayed(), "the range's ends")
    assert not page.by_id("trainingJobDefinition.staticHyperParameters.learning_rate").is_displayed()
    page.fill("range.learning_rate.min", "0.01")
    page.fill("range.learning_rate.max", "2")  # more than learning_rate accepts
    Select(page.by_id("range.optimizer.kind")).select_by_visible_text("Categorical")
    page.fill("range.optimizer.values", "sgd, adam")
    page.driver.execute_script("document.getElementById('range.learning_rate.kind').scrollIntoView()")
    page.screenshot("create-tuning-job")
    page.by_id("submit-tuning-job").click()
    page.wait(
        lambda: "learning_rate allows" in _error_at(page, "range.learning_rate.kind"), "the range's error at its row"
    )
    assert page.by_id("range.optimizer.values").get_attribute("value") == "sgd, adam"  # what was typed stays
    page.fill("range.learning_rate.max", "0.1")
    page.by_id("submit-tuning-job").click()
    page.wait(lambda: page.path() == "/console/tuning-jobs/console-tuning", "the tuning job's page")

    seen = set()

    def ended() -> bool:
        seen.add(page.by_id("tuning-status").text)
        return page.by_id("tuning-status").text == "Completed"

    page.wait(ended, "the tuning job to complete", timeout=300)
    assert "InProgress" in seen, seen  # the page followed it by itself
    page.wait(lambda: page.all("#chart-history canvas") and page.all("#chart-curves canvas"), "the charts")
    assert len(page.all("#parallel-coordinates polyline")) == 3
    assert len(page.all("#tuning-training-jobs tbody tr")) == 3
    best = page.by_id("best-job-link").text
    assert page.find("#tuning-training-jobs tr.best").get_attribute("data-job") == best
    page.screenshot("tuning-job")
    page.by_id("sort-objective").click()
    page.wait(lambda: "sort=objective" in page.driver.current_url, "the table sorted by objective")
    assert page.all("#tuning-training-jobs tbody tr")[0].get_attribute("data-job") == best
    page.open("/console/tuning-jobs")
    page.wait(lambda: page.find('tr[data-tuning-job="console-tuning"]'), "the list")
    page.screenshot("tuning-jobs")
