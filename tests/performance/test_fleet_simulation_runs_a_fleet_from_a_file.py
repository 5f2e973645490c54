"""A fleet of the operator's own (``--profiles my-fleet.json``) runs through the simulation and
the replay exactly as a built-in set does, and a wrong file is refused naming the field."""

import json
from pathlib import Path

import pytest

from tests.performance import fleet_simulation as sim
from tests.performance import learner_replay


def _write(tmp_path, data, name="fleet.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


@pytest.mark.parametrize("name", ["default", "alt", "random:3", "random:11", "wide:2"])
def test_a_dumped_set_loads_back_as_the_same_fleet(name, capsys):
    assert sim.main(["--profiles", name, "--dump-profiles"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert sim.profile_set_from_dict(data) == sim.profile_set(name)


def test_the_replay_of_a_file_is_the_replay_of_the_set_it_holds(tmp_path):
    path = _write(tmp_path, sim.profile_set_to_dict(sim.profile_set("alt")))
    from_file = learner_replay.replay(path, 5, 600)
    assert from_file == learner_replay.replay("alt", 5, 600)
    # ... and a file that differs gives other figures (the file is what is replayed).
    data = sim.profile_set_to_dict(sim.profile_set("alt"))
    for service in data["services"]:
        if service["service_id"] == "tiny-lm":
            service["curve"]["s0"] = 0.2
    assert learner_replay.replay(_write(tmp_path, data, "other.json"), 5, 600) != from_file


def test_the_simulation_takes_a_file_and_names_it_in_its_report(tmp_path):
    data = sim.profile_set_to_dict(sim.profile_set("default"))
    data["name"] = "my-fleet"
    args = sim.parse_args(["--profiles", _write(tmp_path, data), "--requests", "300"])
    assert args.profile_set.name == "my-fleet"
    fleet = sim.Fleet(args.profile_set, sim.Objective())
    assert fleet.capable("storage", ("archival",)) == ["store-slow", "store-archive"]


def test_a_file_without_a_name_is_called_after_the_file(tmp_path):
    data = sim.profile_set_to_dict(sim.profile_set("default"))
    del data["name"]
    assert sim.profile_set(_write(tmp_path, data, "edge-fleet.json")).name == "edge-fleet"


def _minimal():
    return {
        "services": [
            {
                "service_id": "a",
                "service_type": "inference",
                "capabilities": ["chat"],
                "curve": {"s0": 0.9, "s1": 0.5, "m0": 20, "m1": 80},
            }
        ],
        "request_types": {"inference": {"weight": 1, "capabilities": [[0.2, ["chat"]]]}},
    }


def test_a_minimal_file_takes_the_documented_defaults():
    profiles = sim.profile_set_from_dict(_minimal())
    (service,) = profiles.services
    assert (service.curve.shape, service.curve.sigma, service.max_capacity) == (1.0, 0.3, 1000)
    assert (profiles.key_probability, profiles.key_space) == (0.3, 200)


def _set(path, value):
    def change(data):
        target = data
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return change


def _drop(path):
    def change(data):
        target = data
        for part in path[:-1]:
            target = target[part]
        del target[path[-1]]

    return change


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (_set(("services", 0, "curve", "s0"), 1.4), "services[0].curve.s0"),
        (_set(("services", 0, "curve", "m1"), 0), "services[0].curve.m1"),
        (_set(("services", 0, "curve", "sigma"), "wide"), "services[0].curve.sigma"),
        (_set(("services", 0, "curve", "slope"), 2), "services[0].curve.slope"),
        (_drop(("services", 0, "curve", "m0")), "services[0].curve.m0"),
        (_drop(("services", 0, "service_type")), "services[0].service_type"),
        # The registry accepts a fixed set of types: refused here, not at registration.
        (_set(("services", 0, "service_type"), "chat"), "services[0].service_type"),
        (_set(("services", 0, "capabilities"), "chat"), "services[0].capabilities"),
        (_set(("services", 0, "max_capacity"), 0), "services[0].max_capacity"),
        (_set(("services", 0, "max_capacity"), 10**8), "services[0].max_capacity"),
        # Names the registry would refuse at registration, mid-run: refused up front.
        (_set(("services", 0, "service_id"), "LLM Large"), "services[0].service_id"),
        (_set(("services", 0, "service_id"), "x" * 65), "services[0].service_id"),
        (
            _set(("services", 0, "capabilities"), ["ok", "text generation"]),
            "services[0].capabilities[1]",
        ),
        (
            _set(("services", 0, "capabilities"), [f"c{i}" for i in range(65)]),
            "services[0].capabilities",
        ),
        (
            _set(("request_types", "inference", "capabilities"), [[0.5, ["-chat"]]]),
            "request_types.inference.capabilities[0][1][0]",
        ),
        (_set(("services",), []), "profiles.services"),
        (_set(("request_types", "inference", "weight"), -1), "request_types.inference.weight"),
        (
            _set(("request_types", "inference", "capabilities"), [[1.5, ["chat"]]]),
            "request_types.inference.capabilities[0][0]",
        ),
        (_set(("request_types", "vision"), {"weight": 1}), "request_types.vision"),
        (_set(("key_probability",), 2), "profiles.key_probability"),
    ],
)
def test_a_wrong_field_is_refused_by_name(change, field):
    data = _minimal()
    change(data)
    with pytest.raises(sim.ProfileError) as caught:
        sim.profile_set_from_dict(data)
    assert str(caught.value).startswith(field + ":")


def test_a_service_listed_twice_is_refused():
    data = _minimal()
    data["services"].append(dict(data["services"][0]))
    with pytest.raises(sim.ProfileError, match=r"services\[1\].service_id: 'a' appears twice"):
        sim.profile_set_from_dict(data)


def test_the_command_line_names_the_file_and_the_field(tmp_path, capsys):
    data = _minimal()
    data["services"][0]["curve"]["s1"] = -0.5
    path = _write(tmp_path, data)
    with pytest.raises(SystemExit) as exited:
        sim.parse_args(["--profiles", path])
    assert exited.value.code == 2
    assert f"{path}: services[0].curve.s1: -0.5 is outside" in capsys.readouterr().err
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(SystemExit):
        sim.parse_args(["--profiles", str(tmp_path / "broken.json")])
    assert "not JSON" in capsys.readouterr().err


def test_the_example_fleet_in_docs_loads():
    path = Path(__file__).resolve().parents[2] / "docs" / "fleets" / "stress.json"
    fleet = sim.profile_set_from_dict(json.loads(path.read_text()))
    assert fleet.name == "stress"
    broken = next(s for s in fleet.services if s.service_id == "chat-broken")
    assert broken.curve.success(0.0) == broken.curve.success(1.0) == 0.0
