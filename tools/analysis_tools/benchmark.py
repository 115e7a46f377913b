"""Speed and memory of a LIT backbone (by arch) or of a config's whole model, measured side by side.

    python tools/analysis_tools/benchmark.py s --batch 1 --shape 800 1216
    python tools/analysis_tools/benchmark.py ti --batch 8 --shape 224 --train --batch 2
    python tools/analysis_tools/benchmark.py ti --dtype bf16 --compile
    python tools/analysis_tools/benchmark.py configs/retinanet_lit_ti_fpn_1x_coco.py --shape 800 1216
    python tools/analysis_tools/benchmark.py --ops      # DTM vs mmcv deform conv, SDPA vs plain attention
    python tools/analysis_tools/benchmark.py s configs/mask_rcnn_lit_s_fpn_1x_coco.py --batch 1 --shape 800 1216 \
        --backends torch-bf16 onnxruntime openvino openvino-bf16
    python tools/analysis_tools/benchmark.py s litv2-s --shape 800 1216 --batch 1 \
        --official ~/src/LIT ~/src/LITv2 --peers swin-t pvt-s r50

``--official`` takes checkouts of the authors' code (github.com/zhuang-group/LIT, github.com/ziplab/LITv2;
timm must be installed): for every arch target it also times the official detection backbone of that arch
(see :mod:`mmlit_tools.official`), with mmlit's weights, checks that both give the same outputs, and prints
the ratios. ``--peers`` times other backbones the same way: ``r50``, ``swin-t``, ``pvt-s``, ... (mmdet's)
or any mmdet/mmseg/mmpretrain config (its ``model.backbone``; ``mmdet::swin/...py`` works).

Every measurement (mmlit, official or peer) runs in a fresh process (so its peak memory is its own): the
model is built with random weights, run ``--warmup`` times, then timed ``--repeat`` times; the tool prints
the median latency and its spread, throughput, peak memory (CPU: the process's RSS high-water mark over
the runs, imports and weights included, and the part added by the runs; CUDA: max allocated), the minor
page faults per timed run, the achieved FLOP/s as a fraction of this machine's fp32 matmul peak, which
it measures in the same run, and the GEMM bound: the time of the step's own matrix products (matmuls,
convolutions, attention kernels; forward and backward) replayed alone, and the fraction of the step's time
that is (:mod:`mmlit_tools.gemm_replay`). ``--train`` times a training step (forward, backward) in train mode;
otherwise inference in eval mode without gradients.

``--backends`` times CPU inference of each target in several runtimes side by side (:mod:`mmlit_tools.runtimes`):
PyTorch float32 (always, the reference), PyTorch bfloat16, and one static ONNX export of it in onnxruntime
and OpenVINO (float32, bfloat16); an arch is its backbone, a config its export graph (image in, detections
out). Each line gives the speedup over PyTorch float32 and the outputs' deviation from it; PyTorch's lines
add the GEMM bound and what its attention kernels reach against the matmul peak of their dtype.

Page faults are memory that the C allocator gave back to the OS after one run and asked for again in
the next; on CPU each costs about 2 us, and their number varies from process to process with the heap
layout. The README (Speed) shows how to keep that memory with glibc's tunables.
"""
import argparse
import gc
import json
import os
import os.path as osp
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from typing import List

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # tools/: mmlit_tools
from mmlit_tools.runtimes import BACKENDS  # noqa: E402

DTYPES = dict(fp32=None, bf16=torch.bfloat16, fp16=torch.float16)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Benchmark LIT models and ops')
    parser.add_argument('targets', nargs='*', help='LIT / LITv2 archs (ti, s, m, b, litv2-s, ...) and/or config files')
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--shape', type=int, nargs='+', default=[224, 224], help='input size: S or H W')
    parser.add_argument('--train', action='store_true', help='time a training step (fwd + bwd)')
    parser.add_argument('--dtype', choices=list(DTYPES), default='fp32', help='autocast dtype')
    parser.add_argument('--compile', action='store_true', help='torch.compile the model first')
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--repeat', type=int, default=10)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: all)')
    parser.add_argument('--ops', action='store_true',
                        help='also compare the DTM with mmcv.ops.deform_conv2d and SDPA attention with '
                        'a plain softmax(QK^T + B)V')
    parser.add_argument('--ops-dtm', type=int, nargs=4, default=[2, 64, 200, 304], metavar=('B', 'C', 'H', 'W'),
                        help='DTM input for --ops (default: 2 64 200 304)')
    parser.add_argument('--ops-attn', type=int, nargs=5, default=[1, 12, 50, 76, 32],
                        metavar=('B', 'HEADS', 'H', 'W', 'HEAD_DIM'),
                        help='attention input for --ops (default: LIT-S stage 3 at 800x1216)')
    parser.add_argument('--official', nargs='+', default=[], metavar='DIR',
                        help='checkouts of github.com/zhuang-group/LIT and/or github.com/ziplab/LITv2: time the '
                        "official backbone of each arch target beside mmlit's, with the same weights")
    parser.add_argument('--peers', nargs='+', default=[], metavar='PEER',
                        help='also time these backbones: r18, r50, swin-t, pvt-s, pvtv2-b2, or configs of mmdet, '
                        'mmseg or mmpretrain (their model.backbone)')
    parser.add_argument('--ops-hilo', type=int, nargs=3, default=[8, 14, 14], metavar=('B', 'H', 'W'),
                        help="HiLo input for --ops with an official LITv2 checkout, LITv2-S stage 3's attention "
                        '(default: 8 14 14, a batch of 8 at 224)')
    parser.add_argument('--backends', nargs='+', default=[], choices=list(BACKENDS), metavar='BACKEND',
                        help='time inference of each target in these runtimes, side by side: '
                        f"{', '.join(BACKENDS)} (the backbone of an arch, a config's ONNX export graph; "
                        'outputs compared with PyTorch float32, which always runs)')
    parser.add_argument('--memory', action='store_true',
                        help='time and peak memory only: no FLOP count and no GEMM bound (for models too large '
                        'or too slow to trace, e.g. a Mask2Former training step at 1024x1024)')
    parser.add_argument('--json', help='also write the results to this file')
    parser.add_argument('--child', help=argparse.SUPPRESS)
    parser.add_argument('--backend', help=argparse.SUPPRESS)
    parser.add_argument('--onnx', help=argparse.SUPPRESS)
    parser.add_argument('--save-outputs', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.shape = args.shape * 2 if len(args.shape) == 1 else args.shape
    if len(args.shape) != 2:
        parser.error(f'--shape takes one or two sizes, got {args.shape}')
    if not args.targets and not args.peers and not args.ops and not args.child:
        parser.error('name at least one target (arch or config), --peers, or --ops')
    if args.backends and (args.train or args.dtype != 'fp32' or args.compile or args.device != 'cpu'):
        parser.error('--backends times CPU inference in each runtime (bf16 is a backend: torch-bf16, '
                     'openvino-bf16): leave out --train, --dtype, --compile and --device')
    return args


def sync(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def time_fn(fn, warmup: int, repeat: int, device: str):
    """Seconds per call of ``fn`` over ``repeat`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def time_interleaved(fns, warmup: int, repeat: int, device: str):
    """Seconds per call of each of ``fns``, timed in turns (one call of each per round) so that a drift of
    the machine's speed during the measurement falls on all of them alike."""
    for fn in fns:
        time_fn(fn, warmup, 0, device)
    times = [[] for _ in fns]
    for _ in range(repeat):
        for fn, acc in zip(fns, times):
            acc += time_fn(fn, 0, 1, device)
    return times


def matmul_peak(device: str, n: int = 2048, repeat: int = 10, dtype: torch.dtype = torch.float32) -> float:
    """This machine's matmul FLOP/s in ``dtype`` (best of ``repeat``)."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    times = time_fn(lambda: torch.mm(a, b), 2, repeat, device)
    return 2 * n**3 / min(times)


def peak_rss_bytes() -> int:
    """This process's RSS high-water mark. VmHWM belongs to the process image, whereas ``ru_maxrss`` also
    carries over the parent's peak at fork time."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # not Linux: the best there is


def reset_peak_rss() -> bool:
    """Start the RSS high-water mark afresh from the current RSS (Linux: ``/proc/self/clear_refs``), so that
    memory used only while building the model does not count; whether it could."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def summarise(times):
    times = sorted(times)
    # inclusive: quartiles stay within the measured times (the default extrapolates for few runs)
    q = statistics.quantiles(times, n=4, method='inclusive') if len(times) > 1 else [times[0]] * 3
    return dict(median=statistics.median(times), q1=q[0], q3=q[2], min=times[0], max=times[-1])


# ----------------------------------------------------------------------------------------------------
# one model, in its own process


def build_model(spec: str, checkouts) -> torch.nn.Module:
    """The model of a measurement: an mmlit target (arch or config), ``official:<arch>`` (the authors' code
    with the weights of the mmlit arch built from the same seed) or ``peer:<name or config>``."""
    from mmlit_tools.analysis import build_peer, build_target
    kind, _, name = spec.partition(':')
    torch.manual_seed(0)  # an arch's mmlit and official models get the same weights
    if kind == 'peer':
        return build_peer(name)
    if kind == 'official':
        from mmlit_tools.official import build_official, find_checkout
        return build_official(find_checkout(name, checkouts), name, weights_from=build_target(name))
    return build_target(spec)


def measure_model(args) -> dict:
    from mmlit_tools.analysis import dummy_batch, run_step
    target = args.child
    model = build_model(target, args.official).to(args.device)
    model.train(args.train)
    inputs, samples = dummy_batch(model, args.batch, args.shape, with_gt=args.train, device=args.device)
    runner = model
    if args.compile:
        runner = torch.compile(model)
    gc.collect()
    # what building took (an official model is built with the weights of an mmlit one) does not count
    reset = reset_peak_rss()
    rss_before = peak_rss_bytes()
    if args.device.startswith('cuda'):
        torch.cuda.reset_peak_memory_stats()
    dtype = DTYPES[args.dtype]
    device_type = 'cuda' if args.device.startswith('cuda') else 'cpu'
    whole_model = samples is not None
    if dtype is not None and whole_model:
        # as tools/test.py --amp: the backbone and neck in reduced precision, the heads' post-processing
        # (mmcv's NMS, RoIAlign) in float32
        from mmlit_tools.amp import autocast_features
        autocast_features(model, dtype, device_type)

    def step(module=runner):
        ctx = torch.autocast(device_type, dtype=dtype) if dtype is not None and not whole_model else nullcontext()
        with ctx:
            out = run_step(module, inputs, samples, args.train)
        if args.train:
            model.zero_grad(set_to_none=True)
        return out

    time_fn(step, args.warmup, 0, args.device)
    faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    times = time_fn(step, 0, args.repeat, args.device)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before) / args.repeat
    rss_peak = peak_rss_bytes()
    cuda_peak = torch.cuda.max_memory_allocated() if args.device.startswith('cuda') else None
    out = step()
    first = next(iter(_tensors(out)), None)
    if args.save_outputs:
        torch.save([t.detach().float().cpu() for t in _tensors(out)], args.save_outputs)
    if dtype is not None and not args.train and not whole_model:
        # the accuracy of the reduced precision: against the same backbone's float32 outputs (a whole
        # model's predictions are data samples, and its reduced precision is patched in)
        with torch.no_grad():
            ref = _tensors(run_step(model, inputs, samples, False))
        low = _tensors(out)
        result_acc = dict(max_abs_diff=max(float((a.float() - b).abs().max()) for a, b in zip(low, ref)),
                          max_abs=max(float(b.abs().max()) for b in ref),
                          mean_rel_diff=float(sum((a.float() - b).abs().sum() for a, b in zip(low, ref)) /
                                              sum(b.abs().sum() for b in ref)))
    else:
        result_acc = None
    del out
    from mmlit_tools.gemm_replay import record_gemms, replay_gemms
    # after the memory was read; recorded eagerly (the compiled step does the same products)
    gemms = None if args.memory else replay_gemms(record_gemms(lambda: step(model)), repeat=min(args.repeat, 5))
    result = dict(target=target, times=times, rss_before=rss_before, rss_peak=rss_peak, rss_reset=reset,
                  page_faults=faults, out_dtype=None if first is None else str(first.dtype), gemms=gemms)
    if cuda_peak is not None:
        result['cuda_peak'] = cuda_peak
    if result_acc is not None:
        result['vs_fp32'] = result_acc
    return result


def measure_backend_child(args) -> dict:
    """``--backends``, in the child: one backend on the graph and inputs that the parent prepared."""
    from mmlit_tools.gemm_replay import record_gemms, replay_gemms
    from mmlit_tools.runtimes import attention_flops, measure_backend
    reset = reset_peak_rss()
    rss_before = peak_rss_bytes()
    res = measure_backend(lambda: build_model(args.child, args.official), args.backend, args.onnx,
                          args.threads, args.warmup, args.repeat, lambda fn, w, r: time_fn(fn, w, r, 'cpu'),
                          record_gemms=record_gemms)
    result = dict(target=args.child, backend=args.backend, times=res['times'], rss_before=rss_before,
                  rss_peak=peak_rss_bytes(), rss_reset=reset)
    torch.save(res['outputs'], args.save_outputs)
    if res['calls'] is not None:
        result['gemms'] = replay_gemms(res['calls'], repeat=min(args.repeat, 5))
        result['attention_flops'] = attention_flops(res['calls'])
    return result


def _tensors(out) -> list:
    """All tensors of a model's output, in order."""
    if torch.is_tensor(out):
        return [out]
    items = out.values() if isinstance(out, dict) else out if isinstance(out, (tuple, list)) else []
    return [t for item in items for t in _tensors(item)]


def run_child(args, target: str, save_outputs: str = None, backend: str = None, onnx: str = None) -> dict:
    argv = [sys.executable, os.path.abspath(__file__), '--child', target, '--batch', str(args.batch),
            '--shape', *map(str, args.shape), '--dtype', args.dtype, '--warmup', str(args.warmup),
            '--repeat', str(args.repeat), '--device', args.device]
    if args.train:
        argv.append('--train')
    if args.compile:
        argv.append('--compile')
    if args.memory:
        argv.append('--memory')
    if args.threads:
        argv += ['--threads', str(args.threads)]
    if args.official:
        argv += ['--official', *args.official]
    if save_outputs:
        argv += ['--save-outputs', save_outputs]
    if backend:
        argv += ['--backend', backend, '--onnx', onnx]
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith('{')]
    if proc.returncode or not lines:
        raise SystemExit(f'benchmark of {target} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}')
    return json.loads(lines[-1])


def model_flops(spec: str, shape) -> float:
    """Multiply-adds of one image's inference pass (see get_flops.py); an official model's are its mmlit
    arch's (the same function)."""
    import logging

    from mmengine.logging import MMLogger

    from mmlit_tools.analysis import build_peer
    from mmlit_tools.flops import analyse_target, flop_analyzer
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    kind, _, name = spec.partition(':')
    if kind == 'peer':
        model = build_peer(name)
        model.eval()
        with torch.no_grad():
            return float(flop_analyzer(model, torch.randn(1, 3, *shape)).total())
    return float(analyse_target(name if kind == 'official' else spec, shape)[0].total())


def measure_and_report(args, spec: str, peak: float, save_outputs: str = None, label: str = None) -> dict:
    """Measure ``spec`` in a fresh process, print its figures and return them."""
    from mmlit_tools.gemm_replay import describe_bound
    res = run_child(args, spec, save_outputs)
    stats = summarise(res['times'])
    mode = 'train step' if args.train else 'inference'
    if args.memory:
        compute = '  compute: not counted (--memory)'
    else:
        macs = model_flops(spec, args.shape) * args.batch
        flops = 2 * macs * (3 if args.train else 1)  # backward ~ 2x forward
        achieved = flops / stats['median']
        compute = (f'  compute: {macs / args.batch / 1e9:.2f} GMACs/img, achieved {achieved / 1e9:.1f} GFLOP/s = '
                   f'{100 * achieved / peak:.0f}% of the fp32 matmul peak\n'
                   f"  GEMM bound: {describe_bound(res['gemms'], stats['median'], mode)}")
    mem = (f"peak RSS {res['rss_peak'] / 2**30:.2f} GiB (+{(res['rss_peak'] - res['rss_before']) / 2**30:.2f}"
           f" GiB during the runs), {res['page_faults']:.0f} page faults per run")
    if 'cuda_peak' in res:
        mem = f"CUDA max allocated {res['cuda_peak'] / 2**30:.2f} GiB"
    print(f"{spec}{f' ({label})' if label else ''} | {mode} | batch {args.batch} x 3 x {args.shape[0]} x "
          f"{args.shape[1]} | {args.dtype}{' | compiled' if args.compile else ''}\n"
          f"  latency: median {stats['median'] * 1e3:.1f} ms (IQR {stats['q1'] * 1e3:.1f}-"
          f"{stats['q3'] * 1e3:.1f}, min {stats['min'] * 1e3:.1f}, max {stats['max'] * 1e3:.1f}; "
          f'{args.repeat} runs after {args.warmup} warm-up)\n'
          f"  throughput: {args.batch / stats['median']:.1f} img/s\n"
          f'  memory: {mem}\n' + compute, flush=True)
    if 'vs_fp32' in res:
        acc = res['vs_fp32']
        print(f"  {args.dtype} against float32 (the same weights and inputs): max |diff| {acc['max_abs_diff']:.3g} "
              f"(largest |output| {acc['max_abs']:.3g}), mean |diff| / mean |output| {acc['mean_rel_diff']:.2%}",
              flush=True)
    row = dict(target=spec, mode=mode, batch=args.batch, shape=args.shape, dtype=args.dtype, compile=args.compile,
               **stats, throughput=args.batch / stats['median'], rss_peak=res['rss_peak'],
               rss_before=res['rss_before'], page_faults=res['page_faults'], cuda_peak=res.get('cuda_peak'),
               out_dtype=res['out_dtype'], vs_fp32=res.get('vs_fp32'))
    if not args.memory:
        row.update(gflops_per_s=achieved / 1e9, peak_fraction=achieved / peak, gemm_bound_s=res['gemms']['total'],
                   gemm_bound_fraction=res['gemms']['total'] / stats['median'])
    return row


def compare(ours: dict, official: dict, ours_out: str = None, official_out: str = None) -> None:
    """Print mmlit's speed and memory against the official code's (measured in this run) and, for
    inference, how far apart their outputs are; record them in ``ours``."""
    speedup = official['median'] / ours['median']
    key = 'cuda_peak' if ours.get('cuda_peak') is not None else 'rss_peak'
    memory = ours[key] / official[key]
    line = (f"{ours['target']} vs the official code: {speedup:.2f}x faster (median {official['median'] * 1e3:.1f} -> "
            f"{ours['median'] * 1e3:.1f} ms); peak memory {memory:.2f}x the official")
    if key == 'rss_peak' and official['rss_peak'] - official['rss_before'] > 2**26:  # (a ratio of noise if not)
        grown = (ours['rss_peak'] - ours['rss_before']) / (official['rss_peak'] - official['rss_before'])
        line += f' ({grown:.2f}x added during the runs)'
        ours['run_memory_vs_official'] = grown
    ours.update(speedup_vs_official=speedup, memory_vs_official=memory)
    if ours_out and official_out:
        a, b = torch.load(ours_out), torch.load(official_out)
        if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b)):
            raise SystemExit(f"{ours['target']}: mmlit's and the official outputs differ in shape: "
                             f'{[tuple(x.shape) for x in a]} vs {[tuple(y.shape) for y in b]}')
        diff = max(float((x - y).abs().max()) for x, y in zip(a, b))
        scale = max(float(y.abs().max()) for y in b)
        line += f'; outputs: max |mmlit - official| = {diff:.2g} (largest |output| {scale:.3g})'
        ours['max_abs_diff_vs_official'] = diff
    print(line, flush=True)


def measure_backends(args, target: str, peak: float, bf16_peak: float) -> List[dict]:
    """``--backends``: ``target``'s inference in each runtime, each in its own process, on one ONNX file
    and one set of weights and inputs; printed with the speedups over PyTorch float32 and the deviations
    of the outputs from it."""
    from mmlit_tools.analysis import is_config
    from mmlit_tools.gemm_replay import describe_bound
    from mmlit_tools.runtimes import REFERENCE, describe_deviation, deviation, prepare_backends
    backends = [REFERENCE] + [b for b in args.backends if b != REFERENCE]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        print(f'{target} | inference | batch {args.batch} x 3 x {args.shape[0]} x {args.shape[1]} | '
              f"backends: {', '.join(backends)} (exporting to ONNX first)", flush=True)
        onnx, detector = prepare_backends(lambda: build_model(target, args.official), args.batch, args.shape, tmp)
        # a whole model's count is its predict()'s, not the export graph's: only a backbone's is printed
        macs = None if is_config(target) else model_flops(target, args.shape) * args.batch
        outputs = {}
        for backend in backends:
            save = osp.join(tmp, f'{backend}.pt')
            res = run_child(args, target, save, backend=backend, onnx=onnx)
            outputs[backend] = torch.load(save)
            stats = summarise(res['times'])
            row = dict(target=target, backend=backend, batch=args.batch, shape=args.shape, **stats,
                       throughput=args.batch / stats['median'], rss_peak=res['rss_peak'])
            line = (f"  {backend:14s} median {stats['median'] * 1e3:8.1f} ms (IQR {stats['q1'] * 1e3:.1f}-"
                    f"{stats['q3'] * 1e3:.1f}), {row['throughput']:.2f} img/s, peak RSS "
                    f"{res['rss_peak'] / 2**30:.2f} GiB")
            if macs is not None:
                row['gflops_per_s'] = 2 * macs / stats['median'] / 1e9
                line += f", {row['gflops_per_s']:.0f} GFLOP/s"
            if backend != REFERENCE:
                row['speedup'] = rows[0]['median'] / stats['median']
                row['vs_fp32'] = deviation(outputs[REFERENCE], outputs[backend], detector)
                line += f"; {row['speedup']:.2f}x PyTorch fp32; {describe_deviation(row['vs_fp32'])}"
            print(line, flush=True)
            if 'gemms' in res:
                gemms = res['gemms']
                row['gemm_bound_s'] = gemms['total']
                print(f"    GEMM bound: {describe_bound(gemms, stats['median'], 'inference')}", flush=True)
                attn_s = sum(t for op, t in gemms.items() if 'scaled_dot_product' in op)
                if attn_s and res['attention_flops']:
                    achieved = res['attention_flops'] / attn_s
                    mode_peak = bf16_peak if backend.endswith('bf16') else peak
                    row.update(attention_s=attn_s, attention_peak_fraction=achieved / mode_peak)
                    print(f"    attention kernels: {attn_s * 1e3:.1f} ms, {achieved / 1e9:.0f} GFLOP/s = "
                          f"{100 * achieved / mode_peak:.0f}% of the {'bf16' if backend.endswith('bf16') else 'fp32'}"
                          ' matmul peak', flush=True)
            rows.append(row)
    return rows


# ----------------------------------------------------------------------------------------------------
# ops side by side


def measure_ops(args) -> list:
    from mmcv.ops import deform_conv2d

    from mmlit.models.fast_path import module_cache, set_fast_path
    from mmlit.models.layers import GlobalMultiheadAttention
    from mmlit.ops import deform_conv2d_k2s2
    from mmlit.visualization.attention_weights import reference_attention
    rows = []
    B, C, H, W = args.ops_dtm
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(B, C, H, W, generator=gen).to(args.device).requires_grad_()
    offset = (torch.randn(B, 8, H // 2, W // 2, generator=gen) * 2).to(args.device).requires_grad_()
    weight = (torch.randn(C, C, 2, 2, generator=gen) * .05).to(args.device).requires_grad_()
    bias = torch.zeros(C, device=args.device, requires_grad=True)

    def ours():
        deform_conv2d_k2s2(x, offset, weight, bias).sum().backward()

    def mmcv():
        (deform_conv2d(x, offset, weight, 2) + bias.view(1, -1, 1, 1)).sum().backward()

    t_ours = time_fn(ours, 2, args.repeat, args.device)
    t_mmcv = time_fn(mmcv, 2, args.repeat, args.device)
    rows.append((f'DTM fwd+bwd {B}x{C}x{H}x{W} -> {H // 2}x{W // 2}', 'mmlit bilinear sampling + conv',
                 'mmcv.ops.deform_conv2d', t_ours, t_mmcv))

    B, heads, h, w, d = args.ops_attn
    attn = set_fast_path(GlobalMultiheadAttention(heads * d, heads, rel_pos_shape=(7, 7)), True).to(args.device)
    attn.eval()
    attn.init_weights()
    x = torch.randn(B, h * w, heads * d, generator=gen).to(args.device)
    with torch.no_grad():
        torch.testing.assert_close(attn(x, (h, w)), reference_attention(attn, x, (h, w)), rtol=1e-4, atol=1e-4)

    def fast():
        with torch.no_grad():
            # time the whole computation, as the first pass at a new size does
            module_cache(attn, 'table').clear()
            return attn(x, (h, w))

    def plain():
        with torch.no_grad():
            return reference_attention(attn, x, (h, w))

    t_fast = time_fn(fast, 1, args.repeat, args.device)
    t_plain = time_fn(plain, 1, args.repeat, args.device)
    rows.append((f'attention + rel. bias (qkv, attention, proj), {B}x{h * w} tokens, {heads} heads, d={d}',
                 'mmlit (table window + flash SDPA)', 'gather bias + softmax(QK^T+B)V', t_fast, t_plain))
    if args.official:
        from mmlit_tools.official import find_checkout
        checkout = find_checkout('litv2-s', args.official)
        if checkout:
            rows.append(measure_hilo(args, checkout, gen))
    return rows


def measure_hilo(args, checkout: str, gen: torch.Generator) -> tuple:
    """mmlit's HiLo attention against the official ``HiLo`` module of ``checkout`` (ziplab/LITv2), with the
    same weights (checked to give the same output), LITv2-S's stage-3 setting: 384 channels, 12 heads,
    alpha 0.9, window 2."""
    from mmlit.models.fast_path import set_fast_path
    from mmlit.models.layers import HiLoAttention
    from mmlit_tools.official import OFFICIAL_BACKBONES, load_official_file
    B, h, w = args.ops_hilo
    dims, heads, ws, alpha = 384, 12, 2, 0.9
    ours = set_fast_path(HiLoAttention(dims, heads, window_size=ws, alpha=alpha), True).to(args.device).eval()
    official_hilo = load_official_file(osp.join(checkout, OFFICIAL_BACKBONES['litv2'][0])).HiLo
    theirs = official_hilo(dims, num_heads=heads, qkv_bias=True, window_size=ws, alpha=alpha).to(args.device)
    theirs.load_state_dict({k.replace('lo_', 'l_').replace('hi_', 'h_'): v for k, v in ours.state_dict().items()})
    theirs.eval()
    x = torch.randn(B, h * w, dims, generator=gen).to(args.device)
    with torch.no_grad():
        torch.testing.assert_close(ours(x, (h, w)), theirs(x, h, w), rtol=1e-4, atol=1e-4)

    def mmlit():
        with torch.no_grad():
            return ours(x, (h, w))

    def official():
        with torch.no_grad():
            return theirs(x, h, w)

    # a few ms each: many runs, in turns
    t_ours, t_theirs = time_interleaved([mmlit, official], 5, max(args.repeat, 100), args.device)
    return (f'HiLo attention (Hi-Fi + Lo-Fi), {B}x{h * w} tokens, {dims} channels, {heads} heads, window {ws}',
            'mmlit HiLoAttention', 'official HiLo', t_ours, t_theirs)


# ----------------------------------------------------------------------------------------------------


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(measure_backend_child(args) if args.backend else measure_model(args)))
        return

    peak = matmul_peak(args.device)
    threads = torch.get_num_threads()
    print(f'device: {args.device}  threads: {threads}  torch {torch.__version__}')
    print(f'fp32 matmul peak (2048^3, best of 10): {peak / 1e9:.1f} GFLOP/s')
    results = []
    if args.backends:
        bf16_peak = matmul_peak(args.device, n=4096, dtype=torch.bfloat16)
        print(f'bf16 matmul peak (4096^3, best of 10): {bf16_peak / 1e9:.1f} GFLOP/s')
        for target in args.targets:
            results += measure_backends(args, target, peak, bf16_peak)
        args.targets = []
    if args.official:
        from mmlit_tools.analysis import is_config
        from mmlit_tools.official import find_checkout
    for target in args.targets:
        official = None
        if args.official and not is_config(target):
            official = find_checkout(target, args.official)
            if official is None:
                print(f'(no checkout in --official has the official code of {target!r})')
        with tempfile.TemporaryDirectory() as tmp:
            save = (lambda name: osp.join(tmp, name)) if official and not args.train else (lambda name: None)
            res = measure_and_report(args, target, peak, save('mmlit.pt'))
            results.append(res)
            if official:
                ref = measure_and_report(args, f'official:{target}', peak, save('official.pt'), label=official)
                results.append(ref)
                compare(res, ref, save('mmlit.pt'), save('official.pt'))
    for peer in args.peers:
        results.append(measure_and_report(args, f'peer:{peer}', peak))
    peers = [r for r in results if r['target'].startswith('peer:')]
    for r in results:
        if peers and not r['target'].startswith(('peer:', 'official:')):
            r['speedup_vs_peers'] = {osp.basename(p['target'][len('peer:'):]): p['median'] / r['median']
                                     for p in peers}
            print(f"{r['target']} vs peers (their time / this one's): " +
                  ', '.join(f'{name} {ratio:.2f}x' for name, ratio in r['speedup_vs_peers'].items()))
    if args.ops:
        for name, ours, theirs, t_ours, t_theirs in measure_ops(args):
            a, b = statistics.median(t_ours), statistics.median(t_theirs)
            print(f'{name}\n  {ours}: {a * 1e3:.1f} ms | {theirs}: {b * 1e3:.1f} ms | '
                  f'ratio {b / a:.2f}x faster')
            results.append(dict(op=name, ours_s=a, reference_s=b, speedup=b / a))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(matmul_peak=peak, results=results), f, indent=1)


if __name__ == '__main__':
    main()
