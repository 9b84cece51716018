import datetime as dt
import os
import shutil
import signal
import zipfile
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from python_calamine import CalamineWorkbook

from pipeline.reports import pdf
from pipeline.reports.excel_safe import assert_no_formulas
from pipeline.reports.province_report import (
    SHEET_DISTRICTS,
    SHEET_HD28,
    SHEET_REPORT,
    SHEET_STATUS,
    write_province_report,
)
from pipeline.reports.vn_format import pct

PAYLOAD = '=HYPERLINK("http://x","y")'


def by_type(counts, *, expected=3, reported=3):
    rows = []
    for unit_type, units, with_cell, members, total, hd28 in counts:
        rows.append(dict(
            period="2016-06", unit_type=unit_type, units=units, units_eligible=units, units_with_cell=with_cell,
            coverage_pct=pct(with_cell, units), cell_members=members, total_members=total,
            member_share_pct=pct(members, total), cells_hd28=hd28, cells_hd10=with_cell - hd28,
            districts_expected=expected, districts_reported=reported, is_complete=expected == reported,
        ))
    return pd.DataFrame(rows)


PUBLISHED = [("xa", 186, 82, 694, 20000, 4), ("phuong", 24, 24, 282, 3500, 0), ("thi_tran", 12, 9, 115, 2500, 4),
             ("total", 222, 115, 1091, 26000, 8)]


def districts(name_b="Huyện Chư Păh"):
    return pd.DataFrame([
        dict(period="2016-06", district_code="622", district_name="Thành phố Pleiku", status="accepted",
             units=23, units_with_cell=23, coverage_pct=100.0, cell_members=300, total_members=4000,
             member_share_pct=7.5, source_file="Pleiku_201606.xlsx"),
        dict(period="2016-06", district_code="627", district_name=name_b, status="accepted_with_warnings",
             units=15, units_with_cell=5, coverage_pct=33.3, cell_members=40, total_members=1800,
             member_share_pct=2.2, source_file=f"{name_b}.xlsx"),
        dict(period="2016-06", district_code="639", district_name="Huyện Chư Pưh", status="missing",
             units=None, units_with_cell=None, coverage_pct=None, cell_members=None, total_members=None,
             member_share_pct=None, source_file=None),
    ])


def write(tmp_path, *, district_b="Huyện Chư Păh", unit="Ia Mơ Nông", counts=PUBLISHED):
    by_district = districts(district_b)
    hd28 = pd.DataFrame([("627", district_b, unit, "xa")],
                        columns=["district_code", "district_name", "unit_name", "unit_type"])
    return write_province_report(
        tmp_path / "bao_cao.xlsx", period="2016-06", by_type=by_type(counts), by_district=by_district, hd28=hd28,
        status=by_district[["district_code", "district_name", "status", "source_file"]],
        generated_at=dt.datetime(2016, 7, 5, 8, 30),
    )


def table_after(ws, header, n_rows):
    """Rows under a header cell in column A, skipping the "(1) (2) ..." numbering row."""
    for row in ws.iter_rows(min_col=1, max_col=1):
        if row[0].value == header:
            start = row[0].row + 2
            return [[c.value for c in r] for r in ws.iter_rows(min_row=start, max_row=start + n_rows - 1)]
    raise AssertionError(f"no {header!r} table")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    return write(tmp_path_factory.mktemp("report"))


def test_sheets_title_and_narrative(report):
    wb = openpyxl.load_workbook(report)
    assert wb.sheetnames == [SHEET_REPORT, SHEET_DISTRICTS, SHEET_HD28, SHEET_STATUS]
    ws = wb[SHEET_REPORT]
    texts = [c.value for row in ws.iter_rows() for c in row if isinstance(c.value, str)]
    for expected in ("TỈNH ỦY GIA LAI", "BAN TỔ CHỨC", "ĐẢNG CỘNG SẢN VIỆT NAM", "Gia Lai, ngày 5 tháng 7 năm 2016",
                     "BÁO CÁO", "Kết quả thành lập chi bộ cơ quan xã, phường, thị trấn",
                     "(Số liệu tính đến ngày 30/6/2016)"):
        assert expected in texts
    narrative = next(t for t in texts if t.startswith("Tính đến ngày"))
    assert "115/222" in narrative and "(đạt 51,8%)" in narrative and "1.091" in narrative
    assert ws["A1"].font.name == "Times New Roman"


def test_by_type_table_holds_the_figures_as_numbers(report):
    ws = openpyxl.load_workbook(report)[SHEET_REPORT]
    rows = table_after(ws, "Loại đơn vị", 4)
    assert rows == [
        ["Xã", 186, 82, 44.1, 694, 20000, 3.5, 4, 78],
        ["Phường", 24, 24, 100.0, 282, 3500, 8.1, 0, 24],
        ["Thị trấn", 12, 9, 75.0, 115, 2500, 4.6, 4, 5],
        ["Toàn tỉnh", 222, 115, 51.8, 1091, 26000, 4.2, 8, 107],
    ]
    header = next(r for r in ws.iter_rows() if r[0].value == "Loại đơn vị")
    assert header[1].offset(row=2).number_format.endswith("#,##0")
    assert header[3].offset(row=2).number_format.endswith("0.0")


def test_district_status_and_hd28_sheets(report):
    wb = openpyxl.load_workbook(report)
    rows = table_after(wb[SHEET_DISTRICTS], "STT", 4)
    assert rows[1][:6] == [2, "Huyện Chư Păh", "Chấp nhận, có cảnh báo", 15, 5, 33.3]
    assert rows[2][:4] == [3, "Huyện Chư Pưh", "Chưa gửi", None]
    assert rows[3][1:5] == ["Toàn tỉnh", None, 222, 115]
    status = table_after(wb[SHEET_STATUS], "STT", 3)
    assert [r[2] for r in status] == ["Đã chấp nhận", "Chấp nhận, có cảnh báo", "Chưa gửi"]
    assert table_after(wb[SHEET_HD28], "STT", 1) == [[1, "Huyện Chư Păh", "Ia Mơ Nông", "Xã"]]


def test_charts_and_print_setup(report):
    with zipfile.ZipFile(report) as zf:
        charts = [n for n in zf.namelist() if n.startswith("xl/charts/chart")]
        assert len(charts) == 2
        xml = b"".join(zf.read(n) for n in charts).decode()
    assert "'Báo cáo'!$D$" in xml and "'Theo huyện'!$F$" in xml
    wb = openpyxl.load_workbook(report)
    for ws in wb.worksheets:
        assert int(ws.page_setup.paperSize) == int(ws.PAPERSIZE_A4)
        assert ws.sheet_properties.pageSetUpPr.fitToPage and ws.page_setup.fitToWidth == 1
    assert wb[SHEET_DISTRICTS].print_title_rows


def test_hundreds_of_districts_get_their_table_but_no_chart(tmp_path, monkeypatch):
    from pipeline.reports import province_report

    monkeypatch.setattr(province_report, "MAX_DISTRICTS_CHARTED", 2)  # three districts here: too many to chart
    path = write(tmp_path)
    with zipfile.ZipFile(path) as zf:
        charts = [n for n in zf.namelist() if n.startswith("xl/charts/chart")]
        xml = b"".join(zf.read(n) for n in charts).decode()
    assert len(charts) == 1 and "'Báo cáo'!$D$" in xml and "Theo huyện" not in xml
    wb = openpyxl.load_workbook(path)
    assert len(table_after(wb[SHEET_DISTRICTS], "STT", 3)) == 3


def test_no_formulas_even_with_hostile_names(tmp_path):
    path = write(tmp_path, district_b=PAYLOAD, unit="@SUM(A1:A2)")
    assert_no_formulas(path)
    wb = openpyxl.load_workbook(path)
    assert table_after(wb[SHEET_DISTRICTS], "STT", 2)[1][1] == PAYLOAD
    assert table_after(wb[SHEET_HD28], "STT", 1)[0][1:3] == [PAYLOAD, "@SUM(A1:A2)"]
    calamine = CalamineWorkbook.from_path(str(path))
    values = [v for row in calamine.get_sheet_by_name(SHEET_STATUS).to_python() for v in row]
    assert PAYLOAD in values and f"{PAYLOAD}.xlsx" in values


def test_to_pdf_without_soffice_returns_none(tmp_path, monkeypatch, report):
    monkeypatch.setattr(pdf.shutil, "which", lambda name: None)
    assert pdf.to_pdf(report, tmp_path) is None


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice not installed")
def test_to_pdf_renders_the_report(tmp_path, report):
    out = pdf.to_pdf(report, tmp_path / "pdf")
    assert out == tmp_path / "pdf" / "bao_cao.pdf"
    assert out.read_bytes().startswith(b"%PDF")
    assert pdf.to_pdf(tmp_path / "absent.xlsx", tmp_path / "pdf2") is None


def _office_processes(profile) -> list[int]:
    """Processes whose command line names this LibreOffice profile."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and str(profile).encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice not installed")
def test_a_libreoffice_started_ahead_renders_and_is_gone_afterwards(tmp_path, report):
    pdf.warm_up()
    warm = pdf._warm
    assert warm is not None and warm.proc.poll() is None
    out = pdf.to_pdf(report, tmp_path / "pdf")  # handed to the instance, even if it is still starting
    assert out is not None and out.read_bytes().startswith(b"%PDF")
    assert pdf._warm is None and not _office_processes(warm.profile) and not warm.home.exists()


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice not installed")
def test_a_libreoffice_started_ahead_that_died_or_was_never_used_costs_nothing(tmp_path, report):
    pdf.warm_up()
    warm = pdf._warm
    os.killpg(warm.proc.pid, signal.SIGKILL)
    warm.proc.wait()
    out = pdf.to_pdf(report, tmp_path / "pdf")  # starts its own
    assert out is not None and out.read_bytes().startswith(b"%PDF")
    pdf.warm_up()
    unused = pdf._warm
    pdf.cool_down()  # end of a run whose reports needed no PDF
    assert pdf._warm is None and not _office_processes(unused.profile) and not unused.home.exists()


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice not installed")
def test_a_run_killed_outright_leaves_no_libreoffice_behind(tmp_path):
    """SIGKILL runs no clean-up: the watcher ends LibreOffice and removes its profile."""
    import subprocess
    import sys
    import time

    from pipeline.config import PROJECT_ROOT

    script = (
        "import sys\n"
        "from pipeline.reports import pdf\n"
        "pdf.warm_up()\n"
        "print(pdf._warm.profile, flush=True)\n"
        "sys.stdin.read()\n"  # until killed
    )
    run = subprocess.Popen([sys.executable, "-c", script], cwd=PROJECT_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    profile = Path(run.stdout.readline().strip())
    deadline = time.monotonic() + 30
    while not _office_processes(profile) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _office_processes(profile)  # LibreOffice started ahead
    sockets = pdf._office_sockets(profile)
    while not any(s.is_socket() for s in sockets) and time.monotonic() < deadline:
        time.sleep(0.1)
    run.kill()
    run.wait()
    deadline = time.monotonic() + 15
    while (_office_processes(profile) or profile.parent.exists() or any(s.exists() for s in sockets)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _office_processes(profile) and not profile.parent.exists()
    assert not any(s.exists() for s in sockets)  # LibreOffice killed leaves its socket: the watcher removes it


def _in_fork(body) -> int:
    """Run ``body()`` in a forked child (as the warm process forks a run); its exit status."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = body()
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice not installed")
def test_a_forked_run_renders_through_its_parents_spare_and_the_parent_replaces_it(tmp_path, report):
    """The warm process keeps a LibreOffice between runs; the run it forks hands its PDFs to it."""
    assert pdf.keep_spare()
    spare = pdf._warm
    assert pdf.keep_spare() and pdf._warm is spare  # ready and unclaimed: kept as it is

    def run():
        pdf.warm_up()  # as a run does: the parent's spare, claimed, instead of a start of its own
        if pdf._warm is not spare or spare.claimer != os.getpid():
            return 3
        out = pdf.to_pdf(report, tmp_path / "pdf")
        return 0 if out is not None and out.read_bytes().startswith(b"%PDF") else 4

    try:
        assert _in_fork(run) == 0
        assert spare.home.exists() and spare.claimed()  # the run left it to its owner
        assert pdf.keep_spare()  # used up: replaced by a new one, the old one cleared away
        assert pdf._warm is not spare and not spare.home.exists() and not _office_processes(spare.profile)
    finally:
        pdf.cool_down()
    assert pdf._warm is None


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice not installed")
def test_a_spare_serves_one_run_and_a_run_that_converts_nothing_hands_it_back(tmp_path):
    assert pdf.keep_spare()
    spare = pdf._warm

    def claim_and_leave_it():
        pdf.warm_up()
        claimed = spare.claimer == os.getpid()
        pdf.cool_down()  # end of a run whose reports needed no PDF: never ends its parent's instance
        return 0 if claimed else 3

    def claim_and_keep_it():
        pdf.warm_up()
        return 0 if spare.claimer == os.getpid() else 3

    def find_it_taken():
        pdf.warm_up()  # taken by another run: a LibreOffice of its own instead
        own = pdf._warm
        ok = own is not spare and own.owner == os.getpid() and own.running()
        pdf.cool_down()
        return 0 if ok and not own.home.exists() else 3

    try:
        assert _in_fork(claim_and_leave_it) == 0
        assert spare.running() and not spare.claimed()
        assert _in_fork(claim_and_keep_it) == 0
        assert spare.claimed()
        assert _in_fork(find_it_taken) == 0
        assert spare.running()  # nobody but its owner ends it
    finally:
        pdf.cool_down()
    assert not spare.home.exists() and not _office_processes(spare.profile)


def test_alive_tells_a_zombie_from_a_running_process():
    import subprocess
    import sys
    import time

    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        assert pdf._alive(child.pid)
        child.stdin.close()  # it exits; not waited for yet, it is a zombie
        deadline = time.monotonic() + 10
        while pdf._alive(child.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not pdf._alive(child.pid)
    finally:
        child.wait()
    assert not pdf._alive(child.pid)


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice not installed")
def test_a_spare_that_ends_by_itself_is_not_restarted_until_a_run_comes():
    """A broken LibreOffice must not be started again every few seconds for ten idle minutes."""
    assert pdf.keep_spare()
    spare = pdf._warm
    try:
        os.killpg(spare.proc.pid, signal.SIGKILL)  # ends unused, as a broken installation would
        spare.proc.wait()
        assert pdf.keep_spare() is None and pdf._warm is None
        assert pdf.keep_spare() is None  # still none at the next wake
        pdf.retry_spare()  # a run came
        assert pdf.keep_spare() is not None
    finally:
        pdf.cool_down()
        pdf.retry_spare()
    assert not spare.home.exists()


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice not installed")
def test_libreoffice_leaves_nothing_in_the_shared_temporary_folder(tmp_path, report):
    """Killed, LibreOffice leaves its socket in /tmp (one per run, for good) unless removed; its
    temporary files go to its own folder."""
    import tempfile
    import time

    shared = Path(tempfile.gettempdir())
    before = set(shared.iterdir())
    pdf.warm_up()
    warm = pdf._warm
    sockets = pdf._office_sockets(warm.profile)
    deadline = time.monotonic() + 30
    while not any(s.is_socket() for s in sockets) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert any(s.is_socket() for s in sockets)  # the name is LibreOffice's own
    pdf.cool_down()  # SIGKILL: LibreOffice does not remove it itself
    assert not any(s.exists() for s in sockets)
    assert pdf.to_pdf(report, tmp_path / "pdf") is not None  # a start of its own, which quits normally
    left = {p for p in set(shared.iterdir()) - before if "OSL_PIPE" in p.name or p.name.startswith("lu")}
    assert not left
