"""The console over plain HTTP: nothing without a session, CSRF on every change, errors at their fields,
hostile input answered with a page that says what is wrong."""

from __future__ import annotations

import html as html_text
import re

import pytest
import requests

from helpers import KEY, SECRET, Server, training_request

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("web") / "data").start()
    yield srv
    srv.stop()


def _csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def signed_in(server) -> tuple[requests.Session, str]:
    s = requests.Session()
    token = _csrf(s.get(server.url + "/console/login").text)
    r = s.post(
        server.url + "/console/login",
        data={"csrf": token, "access_key_id": KEY, "secret_access_key": SECRET},
        allow_redirects=False,
    )
    assert r.status_code == 303, r.text
    return s, _csrf(s.get(server.url + "/console/jobs").text)


def test_a_browser_at_the_api_address_gets_the_console(server):
    r = requests.get(server.url + "/", allow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/console/jobs"
    r = requests.get(server.url + "/console/jobs", allow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/console/login?next=%2Fconsole%2Fjobs")
    assert requests.get(server.url + "/console/static/vendor/htmx.min.js").ok  # the sign-in page needs them


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/console/jobs"),
        ("GET", "/console/jobs/new"),
        ("GET", "/console/jobs/x"),
        ("GET", "/console/jobs/events"),
        ("GET", "/console/jobs/x/events"),
        ("GET", "/console/jobs/x/model.tar.gz"),
        ("GET", "/console/compare?job=x"),
        ("GET", "/console/data?location=/etc"),
        ("GET", "/console/models"),
        ("GET", "/console/endpoints/x"),
        ("GET", "/console/transform-jobs"),
        ("GET", "/console/tuning-jobs"),
        ("GET", "/console/tuning-jobs/events"),
        ("GET", "/console/s3"),
        ("GET", "/console/s3/bucket?prefix=x/"),
        ("GET", "/console/s3/bucket/object?key=k"),
        ("POST", "/console/s3"),
        ("POST", "/console/s3/bucket/uploads?key=k"),
        ("GET", "/console/tuning-jobs/new"),
        ("GET", "/console/tuning-jobs/x"),
        ("GET", "/console/tuning-jobs/x/events"),
        ("POST", "/console/tuning-jobs/new"),
        ("POST", "/console/tuning-jobs/x/stop"),
        ("POST", "/console/jobs/new"),
        ("POST", "/console/jobs/x/stop"),
        ("POST", "/console/hyperparameters/check"),
        ("POST", "/console/models"),
        ("POST", "/console/endpoints/x/delete"),
        ("POST", "/console/endpoints/x/invoke"),
        ("POST", "/console/logout"),
    ],
)
def test_nothing_works_without_a_session(server, method, path):
    r = requests.request(method, server.url + path, allow_redirects=False)
    if method == "GET":
        assert r.status_code == 303 and "/console/login" in r.headers["location"]
        # a script (an EventSource, htmx) gets 401, not a sign-in page to swap into the page
        for headers in ({"Accept": "text/event-stream"}, {"HX-Request": "true"}):
            scripted = requests.get(server.url + path, headers=headers, allow_redirects=False)
            assert scripted.status_code == 401 and scripted.headers["HX-Redirect"] == "/console/login"
    else:
        assert r.status_code == 401


def test_sign_in_sets_a_strict_http_only_cookie_and_refuses_wrong_keys(server):
    s = requests.Session()
    token = _csrf(s.get(server.url + "/console/login").text)
    wrong = s.post(
        server.url + "/console/login", data={"csrf": token, "access_key_id": KEY, "secret_access_key": "guess"}
    )
    assert wrong.status_code == 401 and "are not this server" in wrong.text
    r = s.post(
        server.url + "/console/login",
        data={"csrf": token, "access_key_id": KEY, "secret_access_key": SECRET, "next": "//evil.example/x"},
        allow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/console/jobs"  # no open redirect
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/console" in cookie
    assert "max-age=28800" in cookie
    assert _csrf(s.get(server.url + "/console/jobs").text) != token  # a new session, a new token


def test_a_tampered_cookie_is_no_session(server):
    s, _ = signed_in(server)
    value = s.cookies.get("roost_console")
    s.cookies.set("roost_console", value[:-3] + ("aaa" if not value.endswith("aaa") else "bbb"), path="/console")
    assert s.get(server.url + "/console/jobs", allow_redirects=False).status_code == 303


def test_every_change_needs_the_csrf_token(server):
    s, token = signed_in(server)
    r = s.post(server.url + "/console/jobs/x/stop", allow_redirects=False)
    assert r.status_code == 403 and "CSRF" in r.text
    r = s.post(server.url + "/console/jobs/x/stop", headers={"X-CSRF-Token": "forged"})
    assert r.status_code == 403
    r = s.post(server.url + "/console/jobs/x/stop", headers={"X-CSRF-Token": token})
    assert r.status_code == 400 and "does not exist" in r.text  # past the guard: the API's own answer
    r = s.post(server.url + "/console/logout", data={"csrf": token}, allow_redirects=False)
    assert r.status_code == 303
    assert s.get(server.url + "/console/jobs", allow_redirects=False).status_code == 303


def _form(train: str, **changes) -> dict:
    form = {
        "trainingJobName": "form-job",
        "roleArn": "arn:aws:iam::000000000000:role/x",
        "algorithmSpecification.trainingImage": "image-classification",
        "algorithmSpecification.trainingInputMode": "File",
        "resourceConfig.instanceType": "ml.m5.large",
        "resourceConfig.instanceCount": "1",
        "resourceConfig.volumeSizeInGB": "10",
        "stoppingCondition.maxRuntimeInSeconds": "600",
        "outputDataConfig.s3OutputPath": train + "-out",
        "inputDataConfig.1.member.channelName": "train",
        "inputDataConfig.1.member.contentType": "application/x-recordio",
        "inputDataConfig.1.member.dataSource.s3DataSource.s3DataType": "S3Prefix",
        "inputDataConfig.1.member.dataSource.s3DataSource.s3Uri": train,
        "hyperParameters.num_classes": "3",
        "hyperParameters.num_training_samples": "27",
        "hyperParameters.epochs": "1",
        "hyperParameters.image_shape": "3,16,16",
        "hyperParameters.num_layers": "8",
        "hyperParameters.mini_batch_size": "8",
    }
    form.update(changes)
    return {k: v for k, v in form.items() if v is not None}


def _field_error(html: str, field: str) -> str:
    m = re.search(rf'id="err-{re.escape(field)}"[^>]*>([^<]*)<', html)
    assert m, f"no error element for {field}"
    return html_text.unescape(m.group(1))


def test_the_form_shows_the_apis_errors_beside_their_fields(server, recs):
    s, token = signed_in(server)
    train = str(recs[0])
    bad = _form(
        train,
        **{
            "stoppingCondition.maxRuntimeInSeconds": "0",
            "hyperParameters.epochs": "many",
            "trainingJobName": "bad name",
        },
    )
    r = s.post(server.url + "/console/jobs/new", data={"csrf": token, **bad})
    assert r.status_code == 400
    assert "failed to satisfy constraint" in _field_error(r.text, "trainingJobName")
    assert "greater than or equal to 1" in _field_error(r.text, "stoppingCondition.maxRuntimeInSeconds")
    r = s.post(
        server.url + "/console/jobs/new", data={"csrf": token, **_form(train, **{"resourceConfig.instanceCount": "0"})}
    )
    assert "needs at least 1 instance" in _field_error(r.text, "resourceConfig.instanceCount")
    r = s.post(
        server.url + "/console/jobs/new", data={"csrf": token, **_form(train, **{"hyperParameters.epochs": "0"})}
    )
    assert "epochs='0' is not valid: expected an integer >= 1" in _field_error(r.text, "hyperParameters.epochs")
    # a channel without its location: the API names the data source; the form puts it at the location field
    r = s.post(
        server.url + "/console/jobs/new",
        data={"csrf": token, **_form(train, **{"inputDataConfig.1.member.dataSource.s3DataSource.s3Uri": ""})},
    )
    assert "Member must not be null" in _field_error(r.text, "inputDataConfig.1.member.dataSource.s3DataSource.s3Uri")
    unknown = s.post(server.url + "/console/jobs/new", data={"csrf": token, **_form(train), "nosuch.member": "1"})
    assert unknown.status_code == 400 and "nosuch.member" in unknown.text

    ok = s.post(server.url + "/console/jobs/new", data={"csrf": token, **_form(train)}, allow_redirects=False)
    assert ok.status_code == 303 and ok.headers["location"] == "/console/jobs/form-job"
    job = server.client().describe_training_job(TrainingJobName="form-job")
    assert job["HyperParameters"]["epochs"] == "1" and job["ResourceConfig"]["InstanceCount"] == 1
    again = s.post(server.url + "/console/jobs/new", data={"csrf": token, **_form(train)})
    assert "must be unique" in _field_error(again.text, "trainingJobName")


def test_as_you_type_checks_answer_every_row(server):
    s, token = signed_in(server)
    r = s.post(
        server.url + "/console/hyperparameters/check",
        data={"hyperParameters.epochs": "0", "hyperParameters.optimizer": "sgd", "hyperParameters.bogus": "1"},
        headers={"X-CSRF-Token": token},
    )
    assert r.ok
    assert "expected an integer >= 1" in _field_error(r.text, "hyperParameters.epochs")
    assert _field_error(r.text, "hyperParameters.optimizer") == ""
    assert "unknown hyperparameter" in _field_error(r.text, "hyperParameters.bogus")
    assert "num_classes is required" in _field_error(r.text, "hyperParameters.num_classes")
    assert r.text.count('hx-swap-oob="true"') >= 30


def test_hostile_locations_and_names_get_pages_not_tracebacks(server, tmp_path):
    s, token = signed_in(server)
    r = s.get(server.url + "/console/data", params={"location": "/etc"})
    assert r.status_code == 400 and "outside the folders this server reads" in r.text
    r = s.get(server.url + "/console/data", params={"location": "s3://bucket/key"})
    assert r.status_code == 400 and "local folders" in r.text
    r = s.get(server.url + "/console/data", params={"location": str(tmp_path / "missing")})
    assert r.status_code == 400 and "does not exist" in r.text
    for path in ("/console/jobs/nosuch", "/console/jobs/..%2F..%2Fetc", "/console/endpoints/nosuch", "/console/x"):
        r = s.get(server.url + path)
        assert r.status_code in (400, 404) and "Traceback" not in r.text, path
    r = s.post(server.url + "/console/endpoints/nosuch/invoke", headers={"X-CSRF-Token": token})
    assert r.status_code in (400, 404) and "nosuch" in r.text


def test_the_list_pages_and_filters(server, recs, tmp_path):
    s, _ = signed_in(server)
    sm = server.client()
    for name in ("page-a", "page-b"):
        sm.create_training_job(**training_request(recs, tmp_path, name=name, epochs=1))
    page = s.get(server.url + "/console/jobs", params={"name": "page-", "sort": "Name", "order": "Ascending"}).text
    assert page.index('data-job="page-a"') < page.index('data-job="page-b"') and 'data-job="form-job"' not in page
    page = s.get(server.url + "/console/jobs", params={"status": "Failed", "name": "page-"}).text
    assert "match this filter" in page


def test_a_channel_outside_the_data_folders_is_refused_at_its_field(server, recs):
    s, token = signed_in(server)
    form = _form(str(recs[0]), **{"inputDataConfig.1.member.dataSource.s3DataSource.s3Uri": "/etc"})
    r = s.post(server.url + "/console/jobs/new", data={"csrf": token, **form})
    field = "inputDataConfig.1.member.dataSource.s3DataSource.s3Uri"
    assert r.status_code == 400 and "outside the folders this server reads" in _field_error(r.text, field)
    assert 'value="/etc"' in r.text  # the form comes back as it was sent


def test_the_data_explorer_reads_only_what_a_job_could(server, tmp_path):
    """A list's entries and a folder's links are held to the training container's rule: inside the image root."""
    import os
    import shutil

    from helpers import make_class_tree
    from roost.formats.lst import ListEntry, write_list

    s, _ = signed_in(server)
    imgs = make_class_tree(tmp_path / "imgs", {"bird": 2, "cat": 2})
    secret = tmp_path / "outside" / "secret.png"
    secret.parent.mkdir()
    shutil.copy(imgs / "bird" / "000.png", secret)
    write_list(imgs / "esc.lst", [ListEntry(0, "../outside/secret.png", (0.0,)), ListEntry(1, str(secret), (1.0,))])
    r = s.get(server.url + "/console/data", params={"location": str(imgs / "esc.lst")})
    assert r.status_code == 400 and "secret.png is outside the image root" in html_text.unescape(r.text)
    assert "2 images" not in r.text and "Traceback" not in r.text
    os.symlink(secret, imgs / "cat" / "link.png")
    r = s.get(server.url + "/console/data", params={"location": str(imgs)})
    assert r.status_code == 400 and "link.png leads outside the folder" in html_text.unescape(r.text)
    (imgs / "cat" / "link.png").unlink()
    r = s.get(server.url + "/console/data", params={"location": str(imgs)})
    assert r.status_code == 200 and "4 images" in r.text
