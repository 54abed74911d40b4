"""Downloading DCASE archives and ground truth from a local HTTP server that can interrupt, corrupt and fail."""
import io
import shutil
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from asd_datasets import download as dl
from asd_datasets.download import download, download_command
from asdcore.errors import DatasetError

SOUND = bytes(range(256)) * 64  # 16 KiB of "audio"


def make_zip(machine, *subdirs, members=None):
    """A stored (uncompressed) archive laid out like the official ones: ``<machine>/<subdir>/<clip>.wav``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name in members or [f"{machine}/{s}/section_00_source_{s}_normal_0000_a_1.wav" for s in subdirs]:
            archive.writestr(name, SOUND)
    return buffer.getvalue()


def corrupt(body):
    """Flip one byte inside the first member's data, so the archive opens but fails its CRC check."""
    at = body.index(SOUND) + 100
    return body[:at] + bytes([body[at] ^ 0xFF]) + body[at + 1:]


class Handler(BaseHTTPRequestHandler):
    """Serves ``files`` with Range support; ``faults[path]`` lists what the next requests get instead:
    an HTTP status, ``"corrupt"``, ``("drop", n)`` (send n bytes, then close the connection) or
    ``("stall", seconds)`` (wait, then close without answering)."""

    files: dict = {}
    faults: dict = {}
    log: list = []

    def do_GET(self):
        path = self.path.lstrip("/")
        self.log.append((path, self.headers.get("Range")))
        fault = self.faults[path].pop(0) if self.faults.get(path) else None
        if isinstance(fault, tuple) and fault[0] == "stall":
            time.sleep(fault[1])
            return
        if path not in self.files or isinstance(fault, int):
            self.send_error(fault or 404)
            return
        body = corrupt(self.files[path]) if fault == "corrupt" else self.files[path]
        start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
        payload = body[start:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if isinstance(fault, tuple) and fault[0] == "drop":
            self.wfile.write(payload[:fault[1]])
            self.close_connection = True
            return
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(request):
    handler = type("TestHandler", (Handler,), {"files": {}, "faults": {}, "log": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()

    def stop():
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)

    request.addfinalizer(stop)
    handler.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    return handler


@pytest.fixture
def sleeps(monkeypatch):
    waited = []
    monkeypatch.setattr(dl, "sleep", waited.append)
    return waited


def fetch_all(server, root, year=2023, **kwargs):
    kwargs = {"subset": "all", "retries": 3, "progress": False, "timeout": 5, **kwargs}
    return download(year, root, mirror=server.url, **kwargs)


def serve_2023(server):
    """dev_fan.zip, bandsaw's eval archives and the 2023 eval ground truth for bandsaw."""
    server.files.update({
        "dev_fan.zip": make_zip("fan", "train", "test"),
        "eval_data_bandsaw_train.zip": make_zip("bandsaw", "train"),
        "eval_data_bandsaw_test.zip": make_zip("bandsaw", "test"),
        "eval_data_list_2023.csv": b"bandsaw\nsection_00_0000.wav,section_00_source_test_normal_0000_a.wav\n",
    })
    for folder in ("ground_truth_data", "ground_truth_domain", "ground_truth_attributes"):
        server.files[f"{folder}/ground_truth_bandsaw_section_00_test.csv"] = b"section_00_0000.wav,0\n"


def requested(server):
    return [path for path, _ in server.log]


def test_downloads_extracts_and_fetches_ground_truth(server, tmp_path, sleeps):
    serve_2023(server)
    report = fetch_all(server, tmp_path, machines=["fan", "bandsaw"])
    base = tmp_path / "original" / "dcase2023"
    assert report.downloaded == report.extracted == [
        "dev_fan.zip", "eval_data_bandsaw_train.zip", "eval_data_bandsaw_test.zip"]
    assert report.skipped == []
    assert sorted(report.ground_truth) == sorted(p for p in server.files if p.endswith(".csv"))
    clip = "section_00_source_{}_normal_0000_a_1.wav"
    for subset, machine, split in [("dev", "fan", "train"), ("dev", "fan", "test"),
                                   ("eval", "bandsaw", "train"), ("eval", "bandsaw", "test")]:
        assert (base / f"{subset}_data" / "raw" / machine / split / clip.format(split)).read_bytes() == SOUND
    assert (base / "ground_truth" / "eval_data_list_2023.csv").read_bytes() == server.files["eval_data_list_2023.csv"]
    assert (base / "ground_truth" / "ground_truth_attributes" / "ground_truth_bandsaw_section_00_test.csv").exists()
    assert not list(base.rglob("*.part")) and not list(base.rglob(".tmp-*"))
    assert sleeps == []


def test_rerun_makes_no_request(server, tmp_path):
    serve_2023(server)
    fetch_all(server, tmp_path, machines=["fan", "bandsaw"])
    server.log.clear()
    report = fetch_all(server, tmp_path, machines=["fan", "bandsaw"])
    assert server.log == []
    assert report.skipped == ["dev_fan.zip", "eval_data_bandsaw_train.zip", "eval_data_bandsaw_test.zip"]
    assert report.downloaded == report.extracted == report.ground_truth == []


def test_missing_marker_or_data_reextracts_without_request(server, tmp_path):
    serve_2023(server)
    fetch_all(server, tmp_path, subset="dev", machines=["fan"])
    base = tmp_path / "original" / "dcase2023"
    (base / "archives" / "dev_fan.zip.done").unlink()
    (base / "dev_data" / "raw" / "fan" / "test" / "section_00_source_test_normal_0000_a_1.wav").write_bytes(b"x")
    server.log.clear()
    report = fetch_all(server, tmp_path, subset="dev", machines=["fan"])
    assert server.log == [] and report.extracted == ["dev_fan.zip"] and report.downloaded == []
    assert (base / "dev_data" / "raw" / "fan" / "test" / "section_00_source_test_normal_0000_a_1.wav"
            ).read_bytes() == SOUND

    shutil.rmtree(base / "dev_data" / "raw" / "fan" / "train")
    report = fetch_all(server, tmp_path, subset="dev", machines=["fan"])
    assert server.log == [] and report.extracted == ["dev_fan.zip"]
    assert (base / "dev_data" / "raw" / "fan" / "train").is_dir()


def test_interrupted_transfer_resumes_with_range(server, tmp_path, sleeps):
    serve_2023(server)
    server.faults["dev_fan.zip"] = [("drop", 5000)]
    report = fetch_all(server, tmp_path, subset="dev", machines=["fan"])
    assert server.log == [("dev_fan.zip", None), ("dev_fan.zip", "bytes=5000-")]
    archive = tmp_path / "original" / "dcase2023" / "archives" / "dev_fan.zip"
    assert archive.read_bytes() == server.files["dev_fan.zip"]
    assert report.extracted == ["dev_fan.zip"] and len(sleeps) == 1


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    serve_2023(server)
    partial = tmp_path / "original" / "dcase2023" / "archives" / "dev_fan.zip.part"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"stale bytes of another file")
    original_get, ranges = server.do_GET, []

    def ignore_range(self):
        ranges.append(self.headers["Range"])
        del self.headers["Range"]
        original_get(self)

    server.do_GET = ignore_range
    fetch_all(server, tmp_path, subset="dev", machines=["fan"])
    assert ranges == [f"bytes={len(b'stale bytes of another file')}-"]
    assert partial.with_suffix("").read_bytes() == server.files["dev_fan.zip"]


def test_corrupt_archive_is_refetched_and_never_extracted(server, tmp_path, sleeps, monkeypatch):
    serve_2023(server)
    server.faults["dev_fan.zip"] = ["corrupt"]
    extracted = []
    real_extract = dl.extract
    monkeypatch.setattr(dl, "extract", lambda path, target: extracted.append(path.read_bytes()) or
                        real_extract(path, target))
    fetch_all(server, tmp_path, subset="dev", machines=["fan"])
    assert server.log == [("dev_fan.zip", None), ("dev_fan.zip", None)]
    assert extracted == [server.files["dev_fan.zip"]] and len(sleeps) == 1


def test_service_unavailable_is_retried_with_exponential_backoff(server, tmp_path, sleeps):
    serve_2023(server)
    server.faults["dev_fan.zip"] = [503, 503, 503]
    report = fetch_all(server, tmp_path, subset="dev", machines=["fan"], backoff=0.5)
    assert requested(server) == ["dev_fan.zip"] * 4
    assert sleeps == [0.5, 1.0, 2.0]
    assert report.extracted == ["dev_fan.zip"]


def test_timeout_is_retried(server, tmp_path, sleeps):
    serve_2023(server)
    server.faults["dev_fan.zip"] = [("stall", 0.5)]
    report = fetch_all(server, tmp_path, subset="dev", machines=["fan"], timeout=0.2)
    assert requested(server) == ["dev_fan.zip"] * 2 and len(sleeps) == 1
    assert report.extracted == ["dev_fan.zip"]


def test_always_corrupt_gives_up_naming_the_url(server, tmp_path, sleeps):
    serve_2023(server)
    server.faults["dev_fan.zip"] = ["corrupt"] * 10
    with pytest.raises(DatasetError, match=rf"{server.url}/dev_fan\.zip.*corrupt archive"):
        fetch_all(server, tmp_path, subset="dev", machines=["fan"], retries=2)
    assert requested(server) == ["dev_fan.zip"] * 3
    base = tmp_path / "original" / "dcase2023"
    assert not (base / "dev_data").exists() and not list((base / "archives").iterdir())


def test_missing_file_fails_at_once(server, tmp_path, sleeps):
    with pytest.raises(DatasetError, match=r"dev_fan\.zip: HTTP 404"):
        fetch_all(server, tmp_path, subset="dev", machines=["fan"])
    assert requested(server) == ["dev_fan.zip"] and sleeps == []


def test_subset_and_machine_filters(server, tmp_path):
    serve_2023(server)
    report = fetch_all(server, tmp_path, subset="dev", machines=["fan"])
    assert requested(server) == ["dev_fan.zip"] and report.ground_truth == []
    assert not (tmp_path / "original" / "dcase2023" / "ground_truth").exists()

    server.log.clear()
    report = fetch_all(server, tmp_path, subset="eval", machines=["bandsaw"])
    assert report.downloaded == ["eval_data_bandsaw_train.zip", "eval_data_bandsaw_test.zip"]
    assert len(report.ground_truth) == 4 and not any("fan" in p for p in requested(server))


def test_2021_ground_truth_is_per_domain(server, tmp_path):
    server.files.update({"eval_data_fan_train.zip": make_zip("fan", "train"),
                         "eval_data_fan_test.zip": make_zip("fan", "source_test", "target_test"),
                         "eval_data_list_2021.csv": b"fan\n"})
    expected = [f"ground_truth_data/ground_truth_fan_section_{s:02d}_{d}_test.csv"
                for s in (3, 4, 5) for d in ("source", "target")]
    server.files.update(dict.fromkeys(expected, b"section_03_source_test_0000.wav,1\n"))
    report = fetch_all(server, tmp_path, year=2021, subset="eval", machines=["fan"])
    assert report.ground_truth == ["eval_data_list_2021.csv", *expected]
    raw = tmp_path / "original" / "dcase2021" / "eval_data" / "raw" / "fan"
    assert sorted(p.name for p in raw.iterdir()) == ["source_test", "target_test", "train"]


def test_2020_has_only_the_eval_list(server, tmp_path):
    server.files.update({"eval_data_train_fan.zip": make_zip("fan", "train"),
                         "eval_data_test_fan.zip": make_zip("fan", "test"), "eval_data_list.csv": b"fan\n"})
    report = fetch_all(server, tmp_path, year=2020, subset="eval", machines=["fan"])
    assert report.ground_truth == ["eval_data_list_2020.csv"]
    assert (tmp_path / "original" / "dcase2020" / "ground_truth" / "eval_data_list_2020.csv").read_bytes() == b"fan\n"


def test_2026_fetches_toycar_r2_and_no_eval_list(server, tmp_path):
    server.files.update({"dev_ToyCar_r2.zip": make_zip("ToyCar", "train", "test"),
                         "dev_fan.zip": make_zip("fan", "train", "test"),
                         "eval_data_ToyDrone_train.zip": make_zip("ToyDrone", "train"),
                         "eval_data_ToyDrone_test.zip": make_zip("ToyDrone", "test")})
    truth = [f"{folder}/ground_truth_ToyDrone_section_00_test.csv"
             for folder in ("ground_truth_data", "ground_truth_domain", "ground_truth_attributes")]
    server.files.update(dict.fromkeys(truth, b"section_00_0001.wav,0\nsection_00_0000.wav,1\n"))
    result = CliRunner().invoke(download_command, ["--year", "2026", "--root", str(tmp_path), "--machines",
                                                   "ToyCar,fan,ToyDrone", "--mirror", server.url])
    assert result.exit_code == 0, result.output
    assert "downloaded 4, extracted 4, skipped 0 archives; 3 ground-truth files" in result.output
    assert requested(server) == ["dev_ToyCar_r2.zip", "dev_fan.zip", "eval_data_ToyDrone_train.zip",
                                 "eval_data_ToyDrone_test.zip", *truth]
    raw = tmp_path / "original" / "dcase2026" / "dev_data" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == ["ToyCar", "fan"]
    assert sorted(p.name for p in (raw / "ToyCar").iterdir()) == ["test", "train"]


def test_2026_official_urls():
    spec = dl.get_year(2026)
    assert [a.url for a in dl.select_archives(spec, ("dev", "eval"), ["ToyCar", "ToyCarEmu", "Sander"])] == [
        "https://zenodo.org/records/19336329/files/dev_ToyCar_r2.zip",
        "https://zenodo.org/records/19336329/files/dev_ToyCarEmu.zip",
        "https://zenodo.org/records/20151556/files/eval_data_Sander_train.zip",
        "https://zenodo.org/records/20437238/files/eval_data_Sander_test.zip"]
    evaluator = ("https://raw.githubusercontent.com/nttcslab/dcase2026_task2_evaluator/"
                 "f6a94a2b5e614a9626c9d1ccff6df0705e6aaa75")
    assert dl.ground_truth_sources(spec, ["Sander"], None) == [
        (f"{folder}/ground_truth_Sander_section_00_test.csv",
         f"{evaluator}/{folder}/ground_truth_Sander_section_00_test.csv")
        for folder in ("ground_truth_data", "ground_truth_domain", "ground_truth_attributes")]


def test_official_urls_without_mirror():
    spec = dl.get_year(2024)
    archives = dl.select_archives(spec, ("eval",), ["3DPrinter"])
    assert [a.url for a in archives] == [
        "https://zenodo.org/records/11259435/files/eval_data_3DPrinter_train_r2.zip",
        "https://zenodo.org/records/11363076/files/eval_data_3DPrinter_test.zip"]
    assert dl.ground_truth_sources(spec, ["3DPrinter"], None)[1] == (
        "ground_truth_data/ground_truth_3DPrinter_section_00_test.csv",
        "https://raw.githubusercontent.com/nttcslab/dcase2024_task2_evaluator/main/"
        "ground_truth_data/ground_truth_3DPrinter_section_00_test.csv")


def test_unknown_machine_and_year(tmp_path):
    with pytest.raises(ValueError, match="machine types: .*bandsaw.*fan"):
        download(2023, tmp_path, machines=["fan", "blender"])
    with pytest.raises(ValueError, match="known years: 2020"):
        download(1999, tmp_path)
    with pytest.raises(ValueError, match="no eval archives"):
        download(2023, tmp_path, subset="eval", machines=["fan"])


@pytest.mark.parametrize("member", ["../escape.wav", "/abs/escape.wav", "fan/../../escape.wav"])
def test_path_traversal_member_is_refused(server, tmp_path, member):
    server.files["dev_fan.zip"] = make_zip("fan", members=["fan/train/ok.wav", member])
    with pytest.raises(DatasetError, match="unsafe member path"):
        fetch_all(server, tmp_path / "data", subset="dev", machines=["fan"])
    assert not list(tmp_path.rglob("escape.wav")) and not list(tmp_path.rglob("ok.wav"))
    assert not (tmp_path / "data" / "original" / "dcase2023" / "archives" / "dev_fan.zip.done").exists()


def test_click_command(server, tmp_path):
    serve_2023(server)
    runner = CliRunner()
    args = ["--year", "2023", "--subset", "dev", "--root", str(tmp_path), "--machines", "fan", "--mirror", server.url]
    result = runner.invoke(download_command, args)
    assert result.exit_code == 0, result.output
    assert "downloaded 1, extracted 1, skipped 0 archives" in result.output
    assert (tmp_path / "original" / "dcase2023" / "dev_data" / "raw" / "fan" / "train").is_dir()

    result = runner.invoke(download_command, ["--year", "1999", "--root", str(tmp_path)])
    assert result.exit_code == 1 and "known years: 2020" in result.output
    result = runner.invoke(download_command, ["--year", "2023", "--root", str(tmp_path), "--machines", "blender"])
    assert result.exit_code == 1 and "unknown machine type(s) blender" in result.output
