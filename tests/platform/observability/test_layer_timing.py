import torch

from npusuite.platform.observability.layer_timing import LayerSampler, torch_module


def _net():
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))


def test_one_call_in_every_is_timed_per_layer_and_hooks_are_removed():
    net = _net()
    seen: list[tuple[str, float]] = []
    sampler = LayerSampler(net, lambda layer, s: seen.append((layer, s)), every=3)
    x = torch.randn(4, 8)
    outs = [sampler(net, x) for _ in range(6)]
    assert all(o.shape == (4, 2) for o in outs)
    assert sampler.sampled == 2
    assert [name for name, _ in seen] == ["0", "1", "2"] * 2
    assert all(s >= 0 for _, s in seen)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in net.modules())


def test_every_zero_times_nothing_and_non_torch_runtimes_are_skipped():
    net = _net()
    seen = []
    sampler = LayerSampler(net, lambda *a: seen.append(a), every=0)
    sampler(net, torch.randn(1, 8))
    assert seen == [] and sampler.sampled == 0

    class OnnxLike:
        module = object()

    assert torch_module(OnnxLike()) is None

    class TorchRuntime:
        module = net

    assert torch_module(TorchRuntime()) is net
