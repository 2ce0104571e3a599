"""The mesh_smp delivery step: params checked when a procedure is saved, and (once sessions
run) whole distributions against the simulator in tests/sim/dfd_sim.py."""
import pytest

from conftest import assert_error, unique

PROCS = "/api/v1/delivery-procedures/"
RX = [{"addr": 2, "img_idx": 0}]


@pytest.fixture(scope="module")
def mesh_method(admin):
    return admin.create("/api/v1/delivery-methods/",
                        {"tid": unique("dm"), "name": "Mesh", "kind": "mesh-smp"})


def mesh_proc(admin, method, params, confirm=True, extra_steps=({"plugin": "link"},)):
    return admin.create(PROCS, {"tid": unique("dp"), "name": "Mesh",
                                "delivery_method": method["id"],
                                "steps": [{"plugin": "mesh_smp", "params": params}]
                                + list(extra_steps),
                                "confirm": confirm})


GOOD_PARAMS = [
    {"udp": "127.0.0.1:1337", "receivers": RX},
    {"udp": {"host": "127.0.0.1", "port": 1337}, "receivers": RX},
    {"transport": "udp", "host": "::1", "port": 5683, "receivers": RX},
    {"transport": "serial", "device": "/dev/ttyACM0", "baud": 115200, "receivers": RX},
    {"serial": "/dev/ttyUSB0:921600", "receivers": [{"addr": 0x7fff, "img_idx": 255}],
     "app_idx": 1, "group": 0xc000, "ttl": 5, "timeout_base": 2, "xfer_mode": 2,
     "policy": "verify", "fwid": "0011223344556677", "metadata": "beef",
     "allow_partial": True, "preempt": False, "poll_ms": 100},
]


@pytest.mark.parametrize("params", GOOD_PARAMS)
def test_good_params_are_stored_as_given(admin, mesh_method, params):
    p = mesh_proc(admin, mesh_method, params)
    assert p["steps"][0] == {"plugin": "mesh_smp", "params": params}
    assert admin.get(PROCS + p["id"]).json()["steps"][0]["params"] == params


# (params, words the error must name besides the step)
BAD_PARAMS = [
    (None, "transport"),
    ({"receivers": RX}, "transport"),
    ({"udp": "127.0.0.1"}, "receivers"),
    ({"udp": "127.0.0.1", "receivers": []}, "receivers"),
    ({"udp": "127.0.0.1", "receivers": [{"addr": 0}]}, "receivers[0].addr"),
    ({"udp": "127.0.0.1", "receivers": [{"addr": 0x8000}]}, "receivers[0].addr"),
    ({"udp": "127.0.0.1", "receivers": [{"addr": 2}, {"addr": 2}]}, "receivers[1].addr"),
    ({"udp": "127.0.0.1", "receivers": [{"addr": 2, "img_idx": 300}]},
     "receivers[0].img_idx"),
    ({"udp": "127.0.0.1", "receivers": [{"addr": n} for n in range(1, 66)]}, "receivers"),
    ({"udp": "127.0.0.1:99999", "receivers": RX}, "udp"),
    ({"udp": "127.0.0.1", "serial": "/dev/ttyACM0", "receivers": RX}, "transport"),
    ({"transport": "carrier-pigeon", "receivers": RX}, "transport"),
    ({"transport": "serial", "device": "/dev/ttyACM0", "baud": 1234, "receivers": RX}, "baud"),
    ({"udp": "127.0.0.1", "receivers": RX, "ttl": 256}, "ttl"),
    ({"udp": "127.0.0.1", "receivers": RX, "xfer_mode": 3}, "xfer_mode"),
    ({"udp": "127.0.0.1", "receivers": RX, "policy": "later"}, "policy"),
    ({"udp": "127.0.0.1", "receivers": RX, "fwid": "xyz"}, "fwid"),
    ({"udp": "127.0.0.1", "receivers": RX, "metadata": "00" * 33}, "metadata"),
    ({"udp": "127.0.0.1", "receivers": RX, "poll_ms": 0}, "poll_ms"),
    ({"udp": "127.0.0.1", "receivers": RX, "allow_partial": "yes"}, "allow_partial"),
    ({"udp": "127.0.0.1", "receivers": RX, "recievers": RX}, "recievers"),
]


@pytest.mark.parametrize("params,key", BAD_PARAMS)
def test_bad_params_rejected_at_creation_and_patch(admin, mesh_method, params, key):
    step = {"plugin": "mesh_smp"}
    if params is not None:
        step["params"] = params
    tid = unique("dp")
    body = {"tid": tid, "name": "Mesh", "delivery_method": mesh_method["id"],
            "steps": [{"plugin": "link"}, step]}
    err = assert_error(admin.post(PROCS, json=body), 400, "invalid")
    what = err["fields"]["steps"]
    assert "step 1" in what and "mesh_smp" in what and key in what, err
    assert_error(admin.get(PROCS + tid), 404)

    # a good procedure patched with the bad step is refused and keeps its steps
    good = mesh_proc(admin, mesh_method, GOOD_PARAMS[0])
    err = assert_error(admin.patch(PROCS + good["id"], json={"steps": [step]}), 400, "invalid")
    assert "step 0" in err["fields"]["steps"] and key in err["fields"]["steps"], err
    assert admin.get(PROCS + good["id"]).json()["steps"] == good["steps"]
