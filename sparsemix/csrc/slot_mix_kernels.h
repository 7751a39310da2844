// The loops of the three slot-mix ops, included twice by slot_mix.cpp: once for the baseline ISA and
// once under `#pragma GCC target("avx2,fma")` (chosen at run time by what the CPU supports), each
// time inside its own namespace. So this file includes nothing and defines only templates: every
// header it relies on (<cstdint>, <vector>, <type_traits>, ATen's half types) is included before,
// compiled for the baseline, never re-instantiated for AVX2 (no ODR clash between the two copies).
//
// Needs in scope: `Dims`, `acc_type<T>`, `kParallelWork`, `kVecBytes`. Vectors are passed by value
// only between inlined functions, so GCC's note on the AVX calling convention (-Wpsabi) does not
// apply.
//
// Why the blocks: accumulating an output row in memory across its K sources stores and reloads
// the row K times; a block of up to 4 vectors of channels is instead summed in registers over all K
// sources and stored once, and the row's K source pointers and weights are looked up once, not once
// per block. The weight gradient's dots take 4 sources per pass over g's row, with lane-wise partial
// sums, reduced once at the end. (The earlier single loop ran at about 2 GFLOP/s; these are 1.5-1.9x
// faster per call with AVX2: benchmarks/native_kernel.py.)

// Vectors of float or double; aligned(...) makes loads through them unaligned-safe. kVecBytes (in
// scope: 32 for AVX2, 16 for the baseline's SSE2) is one register; half of one takes a row's tail
// (C = 36 floats is 4 x 8 + 4 under AVX2).
template <typename T, int Bytes>
struct Vec {
  typedef T type __attribute__((vector_size(Bytes), aligned(sizeof(T))));
};
template <typename T, int Bytes>
constexpr int64_t lanes() { return Bytes / sizeof(T); }
template <typename T, int Bytes>
inline typename Vec<T, Bytes>::type load(const T* p) {
  return *reinterpret_cast<const typename Vec<T, Bytes>::type*>(p);
}

// o[c0 : c0 + NV*L] = init + sum_k wk[k] * rows[k][c0 : ...] for float / double: NV vectors of L
// lanes summed in registers over all K sources, stored once.
template <int NV, int Bytes, typename scalar_t>
inline void gather_vectors(const scalar_t* const* rows, const scalar_t* wk, int64_t K, int64_t c0,
                           const scalar_t* init, scalar_t* o) {
  using vec = typename Vec<scalar_t, Bytes>::type;
  constexpr int64_t L = lanes<scalar_t, Bytes>();
  vec a[NV];
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) a[v] = init ? load<scalar_t, Bytes>(init + c0 + v * L) : vec{};
  for (int64_t k = 0; k < K; ++k) {
    const scalar_t wgt = wk[k];
    const scalar_t* xr = rows[k] + c0;
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) a[v] += wgt * load<scalar_t, Bytes>(xr + v * L);
  }
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) *reinterpret_cast<vec*>(o + c0 + v * L) = a[v];
}

// The same for any type and a few channels (the tail, and the half types, which accumulate in
// float): one channel at a time over all K sources.
template <typename scalar_t, typename acc_t>
inline void gather_scalar(const scalar_t* const* rows, const acc_t* wk, int64_t K, int64_t c0,
                          int64_t c1, const scalar_t* init, scalar_t* o) {
  for (int64_t c = c0; c < c1; ++c) {
    acc_t a = init ? static_cast<acc_t>(init[c]) : acc_t(0);
    for (int64_t k = 0; k < K; ++k) a += wk[k] * static_cast<acc_t>(rows[k][c]);
    o[c] = static_cast<scalar_t>(a);
  }
}

// One output row: 4 vectors at a time, then 1, then a half vector, then channel by channel. Every
// channel sums its K terms in the same order whichever path takes it.
template <typename scalar_t, typename acc_t>
inline void gather_row(const scalar_t* const* rows, const acc_t* wk, int64_t K, int64_t C,
                       const scalar_t* init, scalar_t* o) {
  int64_t c = 0;
  if constexpr (std::is_same_v<scalar_t, acc_t>) {
    constexpr int V = kVecBytes, L = lanes<acc_t, V>();
    for (; c + 4 * L <= C; c += 4 * L) gather_vectors<4, V>(rows, wk, K, c, init, o);
    for (; c + L <= C; c += L) gather_vectors<1, V>(rows, wk, K, c, init, o);
    if constexpr (L >= 4)
      for (; c + L / 2 <= C; c += L / 2) gather_vectors<1, V / 2>(rows, wk, K, c, init, o);
  }
  gather_scalar(rows, wk, K, c, C, init, o);
}

// out[b,i,:] = (x[b,i,:] if residual) + sum_k w[b', r, k] * x[b, j, :] with j = index[i,k] and
// r = (weights_at_source ? j : i): the residual starts the sum, so I + W costs no extra pass.
template <typename scalar_t>
void mix_rows(const scalar_t* x, const scalar_t* w, const int64_t* index, scalar_t* out, const Dims& d,
              bool weights_at_source, bool residual) {
  using acc_t = acc_type<scalar_t>;
  const int64_t rows = d.batch * d.nodes, N = d.nodes, K = d.slots, C = d.channels;
#pragma omp parallel if (rows * K * C > kParallelWork)
  {
    std::vector<const scalar_t*> src_rows(K);  // per thread: the row's K source rows
    std::vector<acc_t> wk(K);                  // and their weights
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t b = r / N, i = r % N;
      const scalar_t* wb = w + (d.wbatch == 1 ? 0 : b) * N * K;
      const scalar_t* xb = x + b * N * C;
      for (int64_t k = 0; k < K; ++k) {
        const int64_t j = index[i * K + k];
        wk[k] = static_cast<acc_t>(wb[(weights_at_source ? j : i) * K + k]);
        src_rows[k] = xb + j * C;
      }
      gather_row<scalar_t, acc_t>(src_rows.data(), wk.data(), K, C, residual ? x + r * C : nullptr,
                                  out + r * C);
    }
  }
}

// dots[k] += <g[0:C], rows[k][0:C]> for KB sources at once (g loaded once per vector): lane-wise
// partial sums in registers, then each reduced in a fixed order (so whichever KB a source falls in,
// its dot is the same).
template <int KB, typename scalar_t, typename acc_t>
inline void dot_block(const scalar_t* g, const scalar_t* const* rows, int64_t C, acc_t* dots) {
  int64_t c = 0;
  acc_t sums[KB] = {};
  if constexpr (std::is_same_v<scalar_t, acc_t>) {
    constexpr int V = kVecBytes, L = lanes<acc_t, V>();
    using vec = typename Vec<acc_t, V>::type;
    using half = typename Vec<acc_t, V / 2>::type;
    vec a[KB] = {};
    for (; c + L <= C; c += L) {
      const vec gv = load<acc_t, V>(g + c);
#pragma GCC unroll 8
      for (int k = 0; k < KB; ++k) a[k] += gv * load<acc_t, V>(rows[k] + c);
    }
    half t[KB] = {};  // a half vector of the tail (C = 36 floats: 4 x 8 + 4 under AVX2)
    if (L >= 4 && c + L / 2 <= C) {
      const half gv = load<acc_t, V / 2>(g + c);
#pragma GCC unroll 8
      for (int k = 0; k < KB; ++k) t[k] = gv * load<acc_t, V / 2>(rows[k] + c);
      c += L / 2;
    }
    for (int k = 0; k < KB; ++k) {  // reduce: low half + high half + tail, then its lanes
      half lo, hi;
      __builtin_memcpy(&lo, &a[k], sizeof(half));
      __builtin_memcpy(&hi, reinterpret_cast<const char*>(&a[k]) + sizeof(half), sizeof(half));
      const half s = lo + hi + t[k];
      for (int64_t l = 0; l < L / 2; ++l) sums[k] += s[l];
    }
  }
  for (int k = 0; k < KB; ++k) {
    for (int64_t cc = c; cc < C; ++cc) sums[k] += static_cast<acc_t>(g[cc]) * static_cast<acc_t>(rows[k][cc]);
    dots[k] += sums[k];
  }
}

// gw[b',i,k] = sum over the batches b mapped to b' (in order) of <g[b,i,:], v[b, src[i,k], :]>.
template <typename scalar_t>
void slot_dots(const scalar_t* g, const scalar_t* v, const int64_t* src, scalar_t* gw, const Dims& d) {
  using acc_t = acc_type<scalar_t>;
  constexpr int64_t KB = 4;  // sources per pass over g's row
  const int64_t rows = d.wbatch * d.nodes, N = d.nodes, K = d.slots, C = d.channels;
  const bool shared = d.wbatch == 1;
#pragma omp parallel if (d.batch * N * K * C > kParallelWork)
  {
    std::vector<const scalar_t*> src_rows(K);
    std::vector<acc_t> dots(K);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t bw = r / N, i = r % N;
      const int64_t b_lo = shared ? 0 : bw, b_hi = shared ? d.batch : bw + 1;
      for (int64_t k = 0; k < K; ++k) dots[k] = 0;
      for (int64_t b = b_lo; b < b_hi; ++b) {  // fixed order over b: deterministic
        const scalar_t* gr = g + (b * N + i) * C;
        for (int64_t k = 0; k < K; ++k) src_rows[k] = v + (b * N + src[i * K + k]) * C;
        int64_t k = 0;
        for (; k + KB <= K; k += KB) dot_block<KB>(gr, src_rows.data() + k, C, dots.data() + k);
        for (; k < K; ++k) dot_block<1>(gr, src_rows.data() + k, C, dots.data() + k);
      }
      for (int64_t k = 0; k < K; ++k) gw[r * K + k] = static_cast<scalar_t>(dots[k]);
    }
  }
}
