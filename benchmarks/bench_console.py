"""The console in chromium: first paint of the jobs list with 1,000 jobs, and the delay from an epoch's log line
to the chart's new point.

Measures, in one script:
* time to first contentful paint of ``/console/jobs`` (the browser's own ``paint`` timing, page fetch included)
  with 1,000 jobs in the database, against the same page with 10 jobs (the baseline);
* for a training job watched on its page: when each epoch's point reaches the chart, against when that epoch's
  ``Validation-accuracy`` line reaches the log panel of the same page (the baseline), both from the moment the
  server ingested the line (the CloudWatch event's timestamp; one machine, one clock).

    .venv/bin/python benchmarks/bench_console.py [--jobs 1000] [--epochs 12]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from browser import start_browser  # noqa: E402
from helpers import KEY, SECRET, Server, make_rec_split, training_request  # noqa: E402
from roost.aws import Account  # noqa: E402
from roost.storage.database import database_url, open_database  # noqa: E402
from roost.storage.tables import TrainingJob  # noqa: E402


def seed_jobs(data_dir: Path, count: int, tmp: Path) -> None:
    """``count`` completed jobs straight into the database, as a long-lived server would hold them."""
    sessions = open_database(database_url(data_dir))
    account = Account()
    request = training_request((tmp / "train.rec", tmp / "val.rec", 27), tmp)
    now = time.time()
    with sessions.begin() as s:
        for i in range(count):
            name = f"bench-{i:05d}"
            t = now - (count - i) * 60
            s.add(
                TrainingJob(
                    name=name,
                    arn=account.arn("training-job", name),
                    request={**request, "TrainingJobName": name},
                    status="Completed",
                    secondary_status="Completed",
                    creation_time=t,
                    last_modified_time=t + 50,
                    training_start_time=t + 2,
                    training_end_time=t + 50,
                    final_metrics=[
                        {"MetricName": "validation:accuracy", "Value": 0.5 + (i % 50) / 100, "Timestamp": t}
                    ],
                    stop_requested=False,
                    log_stream=f"{name}/algo-1-{int(t)}",
                )
            )


def sign_in(driver, url: str) -> None:
    driver.get(url + "/console/login")
    driver.find_element("id", "access_key_id").send_keys(KEY)
    driver.find_element("id", "secret_access_key").send_keys(SECRET)
    driver.find_element("id", "sign-in").click()
    deadline = time.time() + 30
    while "/console/jobs" not in driver.current_url and time.time() < deadline:
        time.sleep(0.1)


def first_paint(driver, url: str, repeats: int) -> float:
    """Median first contentful paint of the jobs list, in ms from navigation start."""
    paints = []
    for _ in range(repeats):
        driver.get(url + "/console/jobs")
        deadline = time.time() + 5
        paint = None
        while paint is None and time.time() < deadline:  # the entry may land just after the load event
            paint = driver.execute_script(
                "const p = performance.getEntriesByType('paint').find(e => e.name === 'first-contentful-paint');"
                "return p ? p.startTime : null;"
            )
            time.sleep(0.05)
        if paint is not None:
            paints.append(paint)
    if not paints:
        raise RuntimeError(f"chromium reported no first contentful paint for {url}/console/jobs")
    return statistics.median(paints)


def list_paint(jobs: int, repeats: int, tmp: Path) -> float:
    data_dir = tmp / f"data-{jobs}"
    data_dir.mkdir()
    seed_jobs(data_dir, jobs, tmp)
    server = Server(data_dir).start()
    driver = start_browser()
    try:
        sign_in(driver, server.url)
        first_paint(driver, server.url, 1)  # warm the server and the browser's cache of the static files
        return first_paint(driver, server.url, repeats)
    finally:
        driver.quit()
        server.stop()


# the page records, in the browser's clock (= the machine's), when each epoch reaches the chart and the log
RECORDER = """
window.arrivals = {chart: {}, log: {}};
const chart = document.getElementById('chart-accuracy');
new MutationObserver(() => {
  const n = Number(chart.dataset.points);
  if (n && !(n - 1 in window.arrivals.chart)) window.arrivals.chart[n - 1] = Date.now();
}).observe(chart, {attributes: true, attributeFilter: ['data-points']});
new MutationObserver(() => {
  for (const line of document.querySelectorAll('#log .line')) {
    const m = /Epoch\\[(\\d+)\\] Validation-accuracy/.exec(line.textContent);
    if (m && !(m[1] in window.arrivals.log)) window.arrivals.log[m[1]] = Date.now();
  }
}).observe(document.getElementById('log'), {childList: true});
"""


def chart_delay(epochs: int, tmp: Path) -> tuple[list[float], list[float]]:
    data = make_rec_split(tmp / "watch", per_class=40)
    server = Server(tmp / "data-watch").start()
    driver = start_browser()
    try:
        sign_in(driver, server.url)
        sm = server.client()
        req = training_request(data, tmp, name="watched", epochs=epochs)
        sm.create_training_job(**req)
        driver.get(server.url + "/console/jobs/watched")
        driver.execute_script(RECORDER)
        sm.get_waiter("training_job_completed_or_stopped").wait(
            TrainingJobName="watched", WaiterConfig={"Delay": 1, "MaxAttempts": 600}
        )
        time.sleep(2)
        arrivals = driver.execute_script("return window.arrivals;")
        logs = server.client("logs")
        stream = logs.describe_log_streams(logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix="watched/")
        name = stream["logStreams"][0]["logStreamName"]
        events = logs.get_log_events(
            logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=name, startFromHead=True, limit=10000
        )["events"]
        ingested = {}
        for e in events:
            m = re.search(r"Epoch\[(\d+)\] Validation-accuracy", e["message"])
            if m:
                ingested[m.group(1)] = e["timestamp"]
        chart = [arrivals["chart"][str(k)] - ingested[k] for k in ingested if str(k) in arrivals["chart"]]
        log = [arrivals["log"][k] - ingested[k] for k in ingested if k in arrivals["log"]]
        return chart, log
    finally:
        driver.quit()
        server.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        make_rec_split(tmp, per_class=12)
        small = list_paint(10, args.repeats, tmp)
        large = list_paint(args.jobs, args.repeats, tmp)
        print(f"jobs list, first contentful paint: 10 jobs {small:.0f} ms (baseline), {args.jobs} jobs {large:.0f} ms")
        print(f"  ratio {large / small:.2f}x")
        chart, log = chart_delay(args.epochs, tmp)
        print(
            f"epoch line ingested -> on the page, over {len(chart)} epochs: "
            f"log panel median {statistics.median(log):.0f} ms (baseline, max {max(log):.0f}), "
            f"chart median {statistics.median(chart):.0f} ms (max {max(chart):.0f})"
        )
        print(f"  ratio {statistics.median(chart) / max(1.0, statistics.median(log)):.2f}x")


if __name__ == "__main__":
    main()
