// Fused slot mix on CPU: out[b,i,:] = sum_k w[b',i,k] * v[b, src[i,k], :]   (b' = b, or 0 if shared)
//
// Registered as torch.ops.sparsemix.{slot_mix, slot_mix_grad_v, slot_mix_grad_w}; autograd, the fake
// (meta) kernels and autocast live in sparsemix/kernels/native.py. Every output row is written by
// exactly one thread and summed in a fixed order, so results are deterministic (no atomics):
//   slot_mix        out[b,i,:]    = sum_k w[b',i,k]        * v[b, src[i,k], :]
//   slot_mix_grad_v gv[b,j,:]     = sum_k w[b',inv[j,k],k] * g[b, inv[j,k], :]   (transpose via inv)
//   (residual=True adds v[b,i,:], resp. g[b,j,:]: the factor I + W in one pass)
//   slot_mix_grad_w gw[b',i,k]    = sum_{b in b'} <g[b,i,:], v[b, src[i,k], :]>  (row dots)
// Half types (bfloat16, float16) are read and written as such but accumulated in float.
// The loops live in slot_mix_kernels.h, compiled for the baseline ISA and for AVX2 + FMA; the CPU
// picks at run time (torch.ops.sparsemix.native_isa() says which ran).
#include <Python.h>

#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <type_traits>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace sparsemix {
namespace {

// Below this many multiply-adds a parallel region costs more than it saves.
constexpr int64_t kParallelWork = 1 << 15;

template <typename T>
using acc_type = std::conditional_t<std::is_same_v<T, double>, double, float>;

struct Dims {
  int64_t batch, wbatch, nodes, slots, channels;
};

// Shapes and dtypes shared by all three ops; `x` is [B, N, C], `w` [B | 1, N, K], `index` [N, K].
Dims check_inputs(const char* op, const at::Tensor& x, const at::Tensor& w, const at::Tensor& index) {
  TORCH_CHECK(x.dim() == 3, op, ": values must be [B, N, C], got ", x.sizes());
  TORCH_CHECK(w.dim() == 3, op, ": w must be [B | 1, N, K], got ", w.sizes());
  TORCH_CHECK(index.dim() == 2, op, ": index must be [N, K], got ", index.sizes());
  TORCH_CHECK(index.scalar_type() == at::kLong, op, ": index must be int64, got ", index.scalar_type());
  TORCH_CHECK(x.scalar_type() == w.scalar_type(), op, ": values and w must share a dtype, got ",
              x.scalar_type(), " and ", w.scalar_type());
  TORCH_CHECK(x.device().is_cpu() && w.device().is_cpu() && index.device().is_cpu(), op,
              ": the native kernel is CPU-only, got ", x.device(), ", ", w.device(), ", ", index.device());
  Dims d{x.size(0), w.size(0), x.size(1), index.size(1), x.size(2)};
  TORCH_CHECK(index.size(0) == d.nodes, op, ": index must be [N, K] with N = ", d.nodes, ", got ",
              index.sizes());
  TORCH_CHECK(w.size(1) == d.nodes && w.size(2) == d.slots, op, ": w must end in [N, K] = [", d.nodes,
              ", ", d.slots, "], got ", w.sizes());
  TORCH_CHECK(d.wbatch == d.batch || d.wbatch == 1, op, ": w's batch must be 1 or ", d.batch, ", got ",
              d.wbatch);
  return d;
}

// One serial pass over N*K ints (cheap next to N*C*K flops): a bad index must raise, not read
// outside the tensor.
void check_range(const char* op, const int64_t* index, int64_t count, int64_t nodes) {
  for (int64_t e = 0; e < count; ++e) {
    TORCH_CHECK(index[e] >= 0 && index[e] < nodes, op, ": index entry ", index[e],
                " is outside [0, N = ", nodes, ")");
  }
}

namespace baseline {
constexpr int kVecBytes = 16;  // SSE2
#include "slot_mix_kernels.h"
}  // namespace baseline

// The same loops compiled for AVX2 + FMA (the channel blocks in 256-bit registers), used when the CPU
// has them: the library itself stays buildable and runnable for the baseline ISA (no -march=native).
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define SPARSEMIX_AVX2 1
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {
constexpr int kVecBytes = 32;
#include "slot_mix_kernels.h"
}  // namespace avx2
#pragma GCC pop_options
#endif

// The AVX2 loops when the CPU has AVX2 and FMA, unless SPARSEMIX_NATIVE_ISA=baseline (read once: the
// tests compare both paths on one machine).
bool use_avx2() {
#ifdef SPARSEMIX_AVX2
  static const bool ok = [] {
    const char* forced = std::getenv("SPARSEMIX_NATIVE_ISA");
    const bool baseline = forced != nullptr && std::string(forced) == "baseline";
    return !baseline && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return ok;
#else
  return false;
#endif
}

std::string native_isa() { return use_avx2() ? "avx2+fma" : "baseline"; }

template <typename scalar_t>
void mix_rows(const scalar_t* x, const scalar_t* w, const int64_t* index, scalar_t* out, const Dims& d,
              bool weights_at_source, bool residual) {
#ifdef SPARSEMIX_AVX2
  if (use_avx2()) return avx2::mix_rows(x, w, index, out, d, weights_at_source, residual);
#endif
  baseline::mix_rows(x, w, index, out, d, weights_at_source, residual);
}

template <typename scalar_t>
void slot_dots(const scalar_t* g, const scalar_t* v, const int64_t* src, scalar_t* gw, const Dims& d) {
#ifdef SPARSEMIX_AVX2
  if (use_avx2()) return avx2::slot_dots(g, v, src, gw, d);
#endif
  baseline::slot_dots(g, v, src, gw, d);
}

at::Tensor slot_mix_cpu(const at::Tensor& v, const at::Tensor& w, const at::Tensor& src,
                        const at::Tensor& inv, bool residual) {
  const Dims d = check_inputs("sparsemix::slot_mix", v, w, src);
  TORCH_CHECK(inv.sizes() == src.sizes(), "sparsemix::slot_mix: inv must have src's shape ",
              src.sizes(), ", got ", inv.sizes());
  const at::Tensor vc = v.contiguous(), wc = w.contiguous(), sc = src.contiguous();
  check_range("sparsemix::slot_mix", sc.const_data_ptr<int64_t>(), sc.numel(), d.nodes);
  at::Tensor out = at::empty(vc.sizes(), vc.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, vc.scalar_type(), "slot_mix", [&] {
    mix_rows<scalar_t>(vc.const_data_ptr<scalar_t>(), wc.const_data_ptr<scalar_t>(),
                       sc.const_data_ptr<int64_t>(), out.mutable_data_ptr<scalar_t>(), d, false,
                       residual);
  });
  return out;
}

at::Tensor slot_mix_grad_v_cpu(const at::Tensor& grad, const at::Tensor& w, const at::Tensor& inv,
                               bool residual) {
  const Dims d = check_inputs("sparsemix::slot_mix_grad_v", grad, w, inv);
  const at::Tensor gc = grad.contiguous(), wc = w.contiguous(), ic = inv.contiguous();
  check_range("sparsemix::slot_mix_grad_v", ic.const_data_ptr<int64_t>(), ic.numel(), d.nodes);
  at::Tensor out = at::empty(gc.sizes(), gc.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, gc.scalar_type(), "slot_mix_grad_v", [&] {
    mix_rows<scalar_t>(gc.const_data_ptr<scalar_t>(), wc.const_data_ptr<scalar_t>(),
                       ic.const_data_ptr<int64_t>(), out.mutable_data_ptr<scalar_t>(), d, true,
                       residual);
  });
  return out;
}

at::Tensor slot_mix_grad_w_cpu(const at::Tensor& grad, const at::Tensor& v, const at::Tensor& src,
                               int64_t w_batch) {
  TORCH_CHECK(w_batch >= 1, "sparsemix::slot_mix_grad_w: w_batch must be >= 1, got ", w_batch);
  TORCH_CHECK(grad.sizes() == v.sizes(), "sparsemix::slot_mix_grad_w: grad must have v's shape ",
              v.sizes(), ", got ", grad.sizes());
  TORCH_CHECK(v.dim() == 3 && src.dim() == 2, "sparsemix::slot_mix_grad_w: v must be [B, N, C] and "
              "src [N, K], got ", v.sizes(), " and ", src.sizes());
  // A w-shaped placeholder lets check_inputs validate the rest.
  const at::Tensor w_like = at::empty({w_batch, v.size(1), src.size(1)}, v.options());
  const Dims d = check_inputs("sparsemix::slot_mix_grad_w", v, w_like, src);
  const at::Tensor gc = grad.contiguous(), vc = v.contiguous(), sc = src.contiguous();
  check_range("sparsemix::slot_mix_grad_w", sc.const_data_ptr<int64_t>(), sc.numel(), d.nodes);
  at::Tensor gw = w_like;  // fully overwritten below
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, vc.scalar_type(), "slot_mix_grad_w", [&] {
    slot_dots<scalar_t>(gc.const_data_ptr<scalar_t>(), vc.const_data_ptr<scalar_t>(),
                        sc.const_data_ptr<int64_t>(), gw.mutable_data_ptr<scalar_t>(), d);
  });
  return gw;
}

int64_t num_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

}  // namespace

TORCH_LIBRARY(sparsemix, m) {
  m.def("slot_mix(Tensor v, Tensor w, Tensor src, Tensor inv, bool residual=False) -> Tensor");
  m.def("slot_mix_grad_v(Tensor grad, Tensor w, Tensor inv, bool residual=False) -> Tensor");
  m.def("slot_mix_grad_w(Tensor grad, Tensor v, Tensor src, int w_batch) -> Tensor");
  m.def("native_threads() -> int", &num_threads);
  m.def("native_isa() -> str", &native_isa);
}

TORCH_LIBRARY_IMPL(sparsemix, CPU, m) {
  m.impl("slot_mix", &slot_mix_cpu);
  m.impl("slot_mix_grad_v", &slot_mix_grad_v_cpu);
  m.impl("slot_mix_grad_w", &slot_mix_grad_w_cpu);
}

}  // namespace sparsemix

// `import sparsemix._C` loads this library (running the registrations above); the module itself
// is empty, so no pybind11 is needed.
extern "C" PyMODINIT_FUNC PyInit__C(void) {
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module);
}
