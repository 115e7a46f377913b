import inspect
import warnings

import pytest
import torch
import torch.nn.functional as F

from mmlit.ops import deform_conv2d_k2s2, deform_sample_k2s2

mmcv_ops = pytest.importorskip('mmcv.ops')


def _reference(x, offset, weight, bias):
    # positional: mmcv's autograd Function takes no keyword arguments on torch < 2.2 (stride 2, padding 0)
    return mmcv_ops.deform_conv2d(x, offset, weight, 2, 0) + bias.view(1, -1, 1, 1)


@pytest.mark.parametrize('size', [(8, 12), (16, 16)])
@pytest.mark.parametrize('scale', [0.7, 3.0, 12.0])
def test_matches_mmcv_deform_conv2d(size, scale):
    """Random offsets, small and large; large ones push many samples outside the image."""
    torch.manual_seed(0)
    H, W = size
    x = torch.randn(2, 5, H, W)
    offset = torch.randn(2, 8, H // 2, W // 2) * scale
    weight, bias = torch.randn(7, 5, 2, 2), torch.randn(7)
    out = deform_conv2d_k2s2(x, offset, weight, bias)
    torch.testing.assert_close(out, _reference(x, offset, weight, bias), rtol=1e-4, atol=1e-4)


def test_matches_mmcv_outside_and_on_the_border():
    """Offsets that land exactly on, just inside, just outside and far outside the image."""
    torch.manual_seed(1)
    x = torch.randn(1, 3, 6, 6)
    weight, bias = torch.randn(4, 3, 2, 2), torch.randn(4)
    for value in (-7., -6., -5.5, -1.0, -0.5, 0.5, 5.0, 5.5, 6.0, 11.0):
        offset = torch.full((1, 8, 3, 3), value)
        offset[:, 1::2] *= -0.5  # different dx
        out = deform_conv2d_k2s2(x, offset, weight, bias)
        torch.testing.assert_close(out, _reference(x, offset, weight, bias), rtol=1e-4, atol=1e-4)


def test_gradients_match_mmcv():
    torch.manual_seed(2)
    x = torch.randn(2, 4, 10, 8, requires_grad=True)
    offset = (torch.randn(2, 8, 5, 4) * 2).requires_grad_()
    weight = torch.randn(6, 4, 2, 2, requires_grad=True)
    bias = torch.randn(6, requires_grad=True)
    grad_out = torch.randn(2, 6, 5, 4)
    ours = torch.autograd.grad((deform_conv2d_k2s2(x, offset, weight, bias) * grad_out).sum(),
                               (x, offset, weight, bias))
    ref = torch.autograd.grad((_reference(x, offset, weight, bias) * grad_out).sum(), (x, offset, weight, bias))
    for name, a, b in zip(('input', 'offset', 'weight', 'bias'), ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3, msg=lambda m: f'grad of {name}: {m}')


def test_gradcheck():
    torch.manual_seed(3)
    x = torch.randn(1, 2, 4, 6, dtype=torch.double, requires_grad=True)
    # keep samples away from integer positions, where bilinear sampling is not differentiable
    offset = (torch.rand(1, 8, 2, 3, dtype=torch.double) * 0.8 + 0.1).requires_grad_()
    weight = torch.randn(3, 2, 2, 2, dtype=torch.double, requires_grad=True)
    bias = torch.randn(3, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(deform_conv2d_k2s2, (x, offset, weight, bias))


def test_zero_offsets_equal_a_plain_conv():
    torch.manual_seed(4)
    x = torch.randn(2, 5, 14, 10)
    weight, bias = torch.randn(8, 5, 2, 2), torch.randn(8)
    out = deform_conv2d_k2s2(x, torch.zeros(2, 8, 7, 5), weight, bias)
    torch.testing.assert_close(out, F.conv2d(x, weight, bias, stride=2), rtol=1e-5, atol=1e-5)
    # the coordinates are pixel positions: zero offsets read each pixel exactly
    assert torch.equal(deform_sample_k2s2(x, torch.zeros(2, 8, 7, 5)), x)


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_gradients_at_integer_positions_match_mmcv(dtype):
    """Zero offsets (DTM's start) and other integer offsets: the gradients are mmcv's (and the official
    DCN's), the forward difference, at float64 precision; inside, on the borders and beyond them."""
    torch.manual_seed(6)
    x = torch.randn(2, 3, 8, 10, dtype=dtype, requires_grad=True)
    weight = torch.randn(4, 3, 2, 2, dtype=dtype, requires_grad=True)
    bias = torch.randn(4, dtype=dtype, requires_grad=True)
    grad_out = torch.randn(2, 4, 4, 5, dtype=dtype)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-5)
    for offset in (torch.zeros(2, 8, 4, 5, dtype=dtype), torch.randint(-3, 4, (2, 8, 4, 5)).to(dtype)):
        offset.requires_grad_()
        ours = torch.autograd.grad((deform_conv2d_k2s2(x, offset, weight, bias) * grad_out).sum(),
                                   (x, offset, weight, bias))
        ref = torch.autograd.grad((_reference(x, offset, weight, bias) * grad_out).sum(),
                                  (x, offset, weight, bias))
        for name, a, b in zip(('input', 'offset', 'weight', 'bias'), ours, ref):
            torch.testing.assert_close(a, b, **tol, msg=lambda m: f'grad of {name}: {m}')


def test_bf16_input_samples_at_float32_coordinates():
    """Under bf16 (autocast gives bf16 offsets), the positions are those of float32: a bf16 coordinate
    near 600 would be off by up to two pixels."""
    torch.manual_seed(7)
    x = torch.randn(1, 2, 4, 1200)
    offset = torch.rand(1, 8, 2, 600) - 0.5
    ref = deform_sample_k2s2(x, offset.bfloat16().float())
    out = deform_sample_k2s2(x.bfloat16(), offset.bfloat16())
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, rtol=2e-2, atol=2e-2)


def test_odd_size_reads_zeros_beyond_the_image():
    """ceil-sized outputs equal a deformable conv on the zero-padded input."""
    torch.manual_seed(5)
    x = torch.randn(1, 3, 7, 9)
    offset = torch.randn(1, 8, 4, 5)
    weight, bias = torch.randn(2, 3, 2, 2), torch.randn(2)
    padded = F.pad(x, (0, 1, 0, 1))
    torch.testing.assert_close(
        deform_conv2d_k2s2(x, offset, weight, bias), _reference(padded, offset, weight, bias),
        rtol=1e-4, atol=1e-4)


def test_bad_offset_shape():
    with pytest.raises(ValueError, match='offset must have shape'):
        deform_sample_k2s2(torch.zeros(1, 3, 4, 4), torch.zeros(1, 18, 2, 2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA (mmcv.ops.deform_conv2d on the GPU)')
def test_matches_mmcv_on_cuda_forward_and_backward():
    torch.manual_seed(4)
    dev = torch.device('cuda')
    x = torch.randn(2, 16, 20, 26, device=dev, requires_grad=True)
    offset = (torch.randn(2, 8, 10, 13, device=dev) * 3).requires_grad_()
    weight = torch.randn(24, 16, 2, 2, device=dev, requires_grad=True)
    bias = torch.randn(24, device=dev, requires_grad=True)
    grad_out = torch.randn(2, 24, 10, 13, device=dev)
    ours = deform_conv2d_k2s2(x, offset, weight, bias)
    ref = _reference(x, offset, weight, bias)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)
    ours_grads = torch.autograd.grad((ours * grad_out).sum(), (x, offset, weight, bias))
    ref_grads = torch.autograd.grad((ref * grad_out).sum(), (x, offset, weight, bias))
    for name, a, b in zip(('input', 'offset', 'weight', 'bias'), ours_grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3, msg=lambda m: f'grad of {name}: {m}')


def test_traced_code_samples_with_grid_sample():
    """torch.jit.trace (the FLOP counters, the TorchScript ONNX exporter) sees one grid_sampler, with the
    eager values."""
    torch.manual_seed(8)
    x, offset = torch.randn(1, 3, 6, 8), torch.randn(1, 8, 3, 4)
    traced = torch.jit.trace(deform_sample_k2s2, (x, offset))
    assert 'aten::grid_sampler' in str(traced.graph) and 'index_select' not in str(traced.graph)
    torch.testing.assert_close(traced(x, offset), deform_sample_k2s2(x, offset), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('size', [(6, 8, 3, 4), (7, 9, 4, 5), (40, 60, 20, 30)])
def test_exported_sampling_gathers_the_eager_values(size):
    """The export form (integer gathers) gives the eager samples, zeros outside the image included."""
    from mmlit.ops.deform_conv import _gather_sample
    H, W, Ho, Wo = size
    torch.manual_seed(3)
    x, offset = torch.randn(2, 5, H, W), torch.randn(2, 8, Ho, Wo) * 3  # many points outside
    torch.testing.assert_close(_gather_sample(x, offset), deform_sample_k2s2(x, offset), rtol=1e-5, atol=1e-5)
    whole = torch.full((2, 8, Ho, Wo), 2.)  # integer offsets: exact copies of pixels
    torch.testing.assert_close(_gather_sample(x, whole), deform_sample_k2s2(x, whole), rtol=0, atol=0)


@pytest.mark.parametrize('opset', [11, 17])
def test_sampling_exports_to_old_opsets(tmp_path, opset):
    """torch's TorchScript exporter (what mmdeploy runs, at opset 11, sizes dynamic) takes the gather form, and
    onnxruntime loads it and gives the eager samples: no integer Clip, which ONNX lacks before opset 12."""
    ort = pytest.importorskip('onnxruntime')
    pytest.importorskip('onnx')
    torch.manual_seed(5)
    x, offset = torch.randn(1, 4, 10, 12), torch.randn(1, 8, 5, 6) * 3
    path = str(tmp_path / 'dtm.onnx')
    kwargs = {'dynamo': False} if 'dynamo' in inspect.signature(torch.onnx.export).parameters else {}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # the TorchScript exporter's deprecation
        torch.onnx.export(_Sample(), (x, offset), path, opset_version=opset, input_names=['x', 'offset'],
                          dynamic_axes={'x': {2: 'height', 3: 'width'}, 'offset': {2: 'h', 3: 'w'}}, **kwargs)
    got = ort.InferenceSession(path, providers=['CPUExecutionProvider']).run(None, dict(x=x.numpy(),
                                                                                     offset=offset.numpy()))[0]
    torch.testing.assert_close(torch.from_numpy(got), deform_sample_k2s2(x, offset), rtol=1e-5, atol=1e-5)


class _Sample(torch.nn.Module):
    """:func:`deform_sample_k2s2` as a module, for the exporter."""

    def forward(self, x, offset):
        """The samples."""
        return deform_sample_k2s2(x, offset)
