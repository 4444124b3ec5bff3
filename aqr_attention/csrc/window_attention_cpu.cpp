// Window terms of AQR's local-window attentions on CPU (AQR after MoME, CVPR 2025).
//
// Every query owns one square window on the BEV key grid and one on the camera key grid
// (the V camera maps stacked view over view, windows clipped to their view). Both
// `local_bias_attention` (window correction of an unbiased fused attention) and
// `local_window_attention` (softmax over the window keys only) need, per query, sums over
// exactly those keys. Done with tensor ops, that means gathering boxes of keys per group
// of queries (aqr_attention/grouped_route.py); here each (query, head) walks its window rows directly,
// so nothing larger than one output row is allocated and no key outside a window is read.
//
// Layouts (float32, or float64 throughout): qs, go [B, h, Q, d] contiguous (qs already scaled by 1/sqrt(d));
// k, v, dk, dv [B, h, K, d] with any strides but a unit stride on d (the head-split
// projections are key-major); mask [B, h, Q, K] additive with any strides (0 for a
// broadcast dimension). Windows: meta [P, 6] int64 rows (offset, rows, cols, block,
// radius, weight index) and centres [P, 4, B, Q] int64 (row, col, has window, order):
// each part's queries are visited in `order`, which puts queries with overlapping
// windows next to each other, so that their keys are still in cache.
#include <torch/extension.h>

#include <ATen/Parallel.h>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define WINDOW_ATTENTION_AVX2 1
#endif

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

namespace {

using torch::Tensor;
template <typename T>
constexpr T kNegInf = -std::numeric_limits<T>::infinity();

struct Part {
  int64_t offset, rows, cols, block, radius, index;
  const int64_t* row;    // [B, Q] window centre row on the part's grid
  const int64_t* col;    // [B, Q]
  const int64_t* has;    // [B, Q] 1 = the query has a window in this part
  const int64_t* order;  // [B, Q] queries of each sample in window-locality order
};

std::vector<Part> make_parts(const Tensor& meta, const Tensor& centres) {
  TORCH_CHECK(meta.dtype() == torch::kInt64 && meta.dim() == 2 && meta.size(1) == 6,
              "window meta must be int64 [P, 6]");
  TORCH_CHECK(centres.dtype() == torch::kInt64 && centres.dim() == 4 && centres.size(0) == meta.size(0) &&
                  centres.size(1) == 4 && centres.is_contiguous(),
              "window centres must be contiguous int64 [P, 4, B, Q]");
  std::vector<Part> parts;
  const int64_t* m = meta.data_ptr<int64_t>();
  const int64_t bq = centres.size(2) * centres.size(3);
  for (int64_t p = 0; p < meta.size(0); ++p, m += 6) {
    const int64_t* c = centres.data_ptr<int64_t>() + p * 4 * bq;
    parts.push_back(Part{m[0], m[1], m[2], m[3], m[4], m[5], c, c + bq, c + 2 * bq, c + 3 * bq});
  }
  return parts;
}

constexpr int kBlock = 16;  // keys scored together (a window row is cut into blocks); % 8 == 0

// fn(first key, count <= kBlock) for each run of consecutive keys of query bq's window in
// part p: its rows, clipped to the grid and to the query's view (a block of rows).
template <typename F>
inline void for_each_window_block(const Part& p, int64_t bq, F&& fn) {
  if (!p.has[bq]) return;
  const int64_t r = p.row[bq], c = p.col[bq];
  const int64_t top = r / p.block * p.block;
  const int64_t r0 = std::max(top, r - p.radius), r1 = std::min(top + p.block, r + p.radius + 1);
  const int64_t c0 = std::max<int64_t>(0, c - p.radius), c1 = std::min(p.cols, c + p.radius + 1);
  for (int64_t rr = r0; rr < r1; ++rr)
    for (int64_t cc = c0; cc < c1; cc += kBlock) fn(p.offset + rr * p.cols + cc, int(std::min<int64_t>(kBlock, c1 - cc)));
}

// Eight independent accumulators, so that the compiler vectorises the reduction without
// being allowed to reassociate floating-point sums in general.
template <typename T>
inline T dot(const T* a, const T* b, int64_t n) {
  T acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  T s = 0;
  for (; i < n; ++i) s += a[i] * b[i];
  return s + ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

#ifdef WINDOW_ATTENTION_AVX2
// Eight dot products x . rows[j * stride] at once (D a multiple of 8): one transposed
// horizontal reduction for all eight instead of one per dot product. Lanes j >= n repeat
// row n - 1 (never read past the last row); their results are to be ignored.
template <int64_t kD>
inline __m256 dot8(const float* x, const float* rows, int64_t stride, int n, int64_t D) {
  const int64_t d = kD ? kD : D;
  const float* row[8];
  for (int j = 0; j < 8; ++j) row[j] = rows + std::min(j, n - 1) * stride;
  __m256 acc[8];
  for (int j = 0; j < 8; ++j) acc[j] = _mm256_setzero_ps();
  for (int64_t i = 0; i < d; i += 8) {
    const __m256 xv = _mm256_loadu_ps(x + i);
    for (int j = 0; j < 8; ++j) acc[j] = _mm256_fmadd_ps(xv, _mm256_loadu_ps(row[j] + i), acc[j]);
  }
  // lanes 0-3 and 4-7 of acc 0..3 and 4..7, then the two halves added
  const __m256 s0123 = _mm256_hadd_ps(_mm256_hadd_ps(acc[0], acc[1]), _mm256_hadd_ps(acc[2], acc[3]));
  const __m256 s4567 = _mm256_hadd_ps(_mm256_hadd_ps(acc[4], acc[5]), _mm256_hadd_ps(acc[6], acc[7]));
  return _mm256_add_ps(_mm256_permute2f128_ps(s0123, s4567, 0x20), _mm256_permute2f128_ps(s0123, s4567, 0x31));
}
#endif

// out[j] = x . rows[j * stride] for j < n (n <= kBlock).
template <typename T, int64_t kD>
inline void block_dots(const T* x, const T* rows, int64_t stride, int n, int64_t D, T* out) {
#ifdef WINDOW_ATTENTION_AVX2
  if constexpr (std::is_same<T, float>::value) {
    if (D % 8 == 0) {  // out has room for kBlock (a multiple of 8) entries
      for (int j = 0; j < n; j += 8) _mm256_storeu_ps(out + j, dot8<kD>(x, rows + j * stride, stride, n - j, D));
      return;
    }
  }
#endif
  for (int j = 0; j < n; ++j) out[j] = dot(x, rows + j * stride, D);
}

template <typename T>
inline void axpy(T a, const T* x, T* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

// A query's running row (output or gradient): in a local array when the head dim is a
// compile-time constant, so that it stays in registers instead of being re-read through
// a pointer that may alias the key rows; written back to `row` once.
template <typename T, int64_t kD>
struct RowAccumulator {
  alignas(64) T local[kD ? kD : 1];
  T* row;
  T* data;
  RowAccumulator(T* row_, int64_t d) : row(row_), data(kD ? local : row_) {
    if (kD) std::copy(row_, row_ + d, local);
  }
  void store(int64_t d) {
    if (kD) std::copy(local, local + d, row);
  }
};

// Strided [B, h, K, d] (or mask [B, h, Q, K]) addressing.
template <typename T>
struct Keys {
  T* data;
  int64_t sb, sh, sk;
  explicit Keys(const Tensor& t) : data(t.data_ptr<T>()), sb(t.stride(0)), sh(t.stride(1)), sk(t.stride(2)) {
    TORCH_CHECK(t.dim() == 4 && t.stride(3) == 1, "window attention: key tensors must be [B, h, K, d] with unit stride on d");
  }
  T* row(int64_t b, int64_t h, int64_t key) const { return data + b * sb + h * sh + key * sk; }
};

template <typename T>
struct Mask {
  const T* data = nullptr;
  int64_t sb = 0, sh = 0, sq = 0, sk = 0;
  explicit Mask(const c10::optional<Tensor>& m) {
    if (!m.has_value()) return;
    TORCH_CHECK(m->dim() == 4, "window attention: mask must be 4-D");
    data = m->data_ptr<T>();
    sb = m->stride(0), sh = m->stride(1), sq = m->stride(2), sk = m->stride(3);
  }
  T at(int64_t b, int64_t h, int64_t q, int64_t key) const {
    return data ? data[b * sb + h * sh + q * sq + key * sk] : T(0);
  }
};

// fn(key, score) for every key of query (b, h, q)'s window in part p whose masked score
// qrow . k + mask is not -inf.
template <typename T, int64_t kD, typename F>
inline void for_each_window_score(const Part& p, int64_t bq, const T* qrow, const Keys<T>& K, const Mask<T>& M,
                                  int64_t b, int64_t h, int64_t q, int64_t D, F&& fn) {
  for_each_window_block(p, bq, [&](int64_t key0, int n) {
    T scores[kBlock];
    block_dots<T, kD>(qrow, K.row(b, h, key0), K.sk, n, D, scores);
    for (int j = 0; j < n; ++j) {
      const T s = scores[j] + M.at(b, h, q, key0 + j);
      if (s != kNegInf<T>) fn(key0 + j, s);
    }
  });
}

void check_queries(const Tensor& t, const char* name, const Tensor& like) {
  TORCH_CHECK(t.dim() == 4 && t.is_contiguous() && t.scalar_type() == like.scalar_type(),
              "window attention: ", name, " must be contiguous [B, h, Q, d] of the queries' dtype");
}

// Every tensor but the int64 windows has the queries' dtype (float32 or float64).
void check_dtypes(const Tensor& qs, std::initializer_list<Tensor> tensors, const c10::optional<Tensor>& mask) {
  TORCH_CHECK(qs.scalar_type() == torch::kFloat32 || qs.scalar_type() == torch::kFloat64,
              "window attention: float32 or float64 tensors expected");
  for (const Tensor& t : tensors)
    TORCH_CHECK(t.scalar_type() == qs.scalar_type(), "window attention: mixed dtypes (", t.scalar_type(), " vs ",
                qs.scalar_type(), ")");
  if (mask.has_value()) TORCH_CHECK(mask->scalar_type() == qs.scalar_type(), "window attention: mask dtype");
}

// Correction terms of an unbiased attention (row log-sum-exp lse0) for a bias that is
// log(1 + weight) on the window keys: s_sum = sum w p0, corr = sum w p0 v, p0 = exp(s - lse0).
template <typename T, int64_t kD>
std::vector<Tensor> correction_forward_impl(const Tensor& qs, const Tensor& k, const Tensor& v,
                                       const c10::optional<Tensor>& mask, const Tensor& meta,
                                       const Tensor& centres, const Tensor& weight, const Tensor& lse0) {
  check_queries(qs, "qs", qs);
  const int64_t B = qs.size(0), H = qs.size(1), Q = qs.size(2), D = kD ? kD : qs.size(3);  // a constant for the common head dims
  const auto parts = make_parts(meta, centres);
  const Keys<T> K(k), V(v);
  const Mask<T> M(mask);
  TORCH_CHECK(weight.is_contiguous() && lse0.is_contiguous(), "bad weight / lse");
  auto s_sum = torch::zeros({B, H, Q}, qs.options());
  auto corr = torch::zeros_like(qs);
  const T *q_ = qs.data_ptr<T>(), *w_ = weight.data_ptr<T>(), *l_ = lse0.data_ptr<T>();
  T *ss_ = s_sum.data_ptr<T>(), *c_ = corr.data_ptr<T>();
  // one part at a time, so that two threads never write the same query's row
  for (const Part& p : parts) {
    at::parallel_for(0, B * H * Q, 32, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        const int64_t b = t / (H * Q), h = t / Q % H, bq = b * Q + p.order[b * Q + t % Q];
        const int64_t q = bq - b * Q, i = (b * H + h) * Q + q;
        const T w = w_[p.index * B * Q + bq];
        if (w == T(0)) continue;
        const T *qrow = q_ + i * D, lse = l_[i];
        RowAccumulator<T, kD> out_row(c_ + i * D, D);
        T* acc = out_row.data;
        T total = 0;
        for_each_window_score<T, kD>(p, bq, qrow, K, M, b, h, q, D, [&](int64_t key, T s) {
          const T c = std::exp(s - lse) * w;
          total += c;
          axpy(c, V.row(b, h, key), acc, D);
        });
        ss_[i] += total;
        out_row.store(D);
      }
    });
  }
  return {s_sum, corr};
}

// Softmax over the window keys only (all parts together): out [B, h, Q, d] and its row
// log-sum-exp (-inf and zeros for a query without a visible window key).
template <typename T, int64_t kD>
std::vector<Tensor> softmax_forward_impl(const Tensor& qs, const Tensor& k, const Tensor& v,
                                    const c10::optional<Tensor>& mask, const Tensor& meta, const Tensor& centres) {
  check_queries(qs, "qs", qs);
  const int64_t B = qs.size(0), H = qs.size(1), Q = qs.size(2), D = kD ? kD : qs.size(3);  // a constant for the common head dims
  const auto parts = make_parts(meta, centres);
  const Keys<T> K(k), V(v);
  const Mask<T> M(mask);
  auto out = torch::zeros_like(qs);
  Tensor lse = torch::full({B, H, Q}, kNegInf<T>, qs.options());  // running max until the end
  auto sum = torch::zeros({B, H, Q}, qs.options());
  const T* q_ = qs.data_ptr<T>();
  T *o_ = out.data_ptr<T>(), *l_ = lse.data_ptr<T>(), *z_ = sum.data_ptr<T>();
  for (const Part& p : parts) {  // online softmax, carried across the parts
    at::parallel_for(0, B * H * Q, 32, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        const int64_t b = t / (H * Q), h = t / Q % H, bq = b * Q + p.order[b * Q + t % Q];
        const int64_t q = bq - b * Q, i = (b * H + h) * Q + q;
        const T* qrow = q_ + i * D;
        RowAccumulator<T, kD> out_row(o_ + i * D, D);
        T* acc = out_row.data;
        T m = l_[i], total = z_[i];
        for_each_window_score<T, kD>(p, bq, qrow, K, M, b, h, q, D, [&](int64_t key, T s) {
          if (s > m) {
            const T r = std::exp(m - s);  // 0 while m is -inf
            total *= r;
            for (int64_t j = 0; j < D; ++j) acc[j] *= r;
            m = s;
          }
          const T e = std::exp(s - m);
          total += e;
          axpy(e, V.row(b, h, key), acc, D);
        });
        l_[i] = m, z_[i] = total;
        out_row.store(D);
      }
    });
  }
  at::parallel_for(0, B * H * Q, 256, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      if (z_[i] > 0) {
        for (int64_t j = 0; j < D; ++j) o_[i * D + j] /= z_[i];
        l_[i] += std::log(z_[i]);
      }
    }
  });
  return {out, lse};
}

// Softmax-backward terms on the window keys, for probabilities p = exp(s - lse) (lse
// finite), weighted by w per (part, query):
//   dS = p (go . v - row_term);  dq += w dS k;  dk += w dS qs;  dv += w p go
// and, per part, db = (w + 1) sum dS over its window keys ([2, B, h, Q]). For
// local_bias_attention w = e^b - 1 (true minus fused terms, db the bias gradient); for
// local_window_attention w = 1 and db is unused. Parallel over (sample, head), so that
// the key gradients of one head are written by one thread.
template <typename T, int64_t kD>
Tensor window_backward_impl(const Tensor& qs, const Tensor& k, const Tensor& v, const Tensor& go,
                       const Tensor& row_term, const Tensor& lse, const c10::optional<Tensor>& mask,
                       const Tensor& meta, const Tensor& centres, const Tensor& weight, Tensor dq,
                       Tensor dk, Tensor dv) {
  check_queries(qs, "qs", qs);
  check_queries(go, "grad_out", qs);
  check_queries(dq, "dq", qs);
  const int64_t B = qs.size(0), H = qs.size(1), Q = qs.size(2), D = kD ? kD : qs.size(3);  // a constant for the common head dims
  const auto parts = make_parts(meta, centres);
  const Keys<T> K(k), V(v), dK(dk), dV(dv);
  const Mask<T> M(mask);
  TORCH_CHECK(row_term.is_contiguous() && lse.is_contiguous() && weight.is_contiguous(), "bad row terms");
  auto db = torch::zeros({2, B, H, Q}, qs.options());
  const T *q_ = qs.data_ptr<T>(), *g_ = go.data_ptr<T>(), *rt_ = row_term.data_ptr<T>();
  const T *l_ = lse.data_ptr<T>(), *w_ = weight.data_ptr<T>();
  T *dq_ = dq.data_ptr<T>(), *db_ = db.data_ptr<T>();
  at::parallel_for(0, B * H, 1, [&](int64_t begin, int64_t end) {
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / H, h = bh % H;
      for (const Part& p : parts) {
        for (int64_t j = 0; j < Q; ++j) {
          const int64_t q = p.order[b * Q + j], i = bh * Q + q, bq = b * Q + q;
          const T *qrow = q_ + i * D, *grow = g_ + i * D;
          RowAccumulator<T, kD> dq_row(dq_ + i * D, D);
          T* dqrow = dq_row.data;
          const T lse_i = l_[i], rt = rt_[i], w = w_[p.index * B * Q + bq];
          T ds_sum = 0;
          for_each_window_block(p, bq, [&](int64_t key0, int n) {
            T scores[kBlock], go_v[kBlock];
            block_dots<T, kD>(qrow, K.row(b, h, key0), K.sk, n, D, scores);
            block_dots<T, kD>(grow, V.row(b, h, key0), V.sk, n, D, go_v);
            for (int j = 0; j < n; ++j) {
              const int64_t key = key0 + j;
              const T* krow = K.row(b, h, key);
              const T s = scores[j] + M.at(b, h, q, key);
              if (s == kNegInf<T>) continue;
              const T prob = std::exp(s - lse_i);
              const T ds = prob * (go_v[j] - rt);
              ds_sum += ds;
              if (w == T(0)) continue;
              axpy(w * ds, krow, dqrow, D);
              axpy(w * ds, qrow, dK.row(b, h, key), D);
              axpy(w * prob, grow, dV.row(b, h, key), D);
            }
          });
          dq_row.store(D);
          db_[(p.index * B * H + bh) * Q + q] += (w + T(1)) * ds_sum;
        }
      }
    }
  });
  return db;
}

// Head dims 32 (decoder) and 64 (AQR layer) get fully unrolled inner loops.
// float64 (gradient checks) takes the generic loops.
#define WINDOW_DISPATCH_HEAD_DIM(FN, ...)              \
  if (qs.scalar_type() == torch::kFloat64) return FN<double, 0>(__VA_ARGS__); \
  switch (qs.size(3)) {                                 \
    case 32: return FN<float, 32>(__VA_ARGS__);         \
    case 64: return FN<float, 64>(__VA_ARGS__);         \
    default: return FN<float, 0>(__VA_ARGS__);          \
  }

std::vector<Tensor> correction_forward(const Tensor& qs, const Tensor& k, const Tensor& v,
                                       const c10::optional<Tensor>& mask, const Tensor& meta,
                                       const Tensor& centres, const Tensor& weight, const Tensor& lse0) {
  check_dtypes(qs, {k, v, weight, lse0}, mask);
  WINDOW_DISPATCH_HEAD_DIM(correction_forward_impl, qs, k, v, mask, meta, centres, weight, lse0)
}

std::vector<Tensor> softmax_forward(const Tensor& qs, const Tensor& k, const Tensor& v,
                                    const c10::optional<Tensor>& mask, const Tensor& meta, const Tensor& centres) {
  check_dtypes(qs, {k, v}, mask);
  WINDOW_DISPATCH_HEAD_DIM(softmax_forward_impl, qs, k, v, mask, meta, centres)
}

Tensor window_backward(const Tensor& qs, const Tensor& k, const Tensor& v, const Tensor& go,
                       const Tensor& row_term, const Tensor& lse, const c10::optional<Tensor>& mask,
                       const Tensor& meta, const Tensor& centres, const Tensor& weight, Tensor dq,
                       Tensor dk, Tensor dv) {
  check_dtypes(qs, {k, v, go, row_term, lse, weight, dq, dk, dv}, mask);
  WINDOW_DISPATCH_HEAD_DIM(window_backward_impl, qs, k, v, go, row_term, lse, mask, meta, centres, weight,
                           dq, dk, dv)
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "CPU window terms of AQR's local-window attentions";
  m.def("correction_forward", &correction_forward, "window correction of an unbiased attention");
  m.def("softmax_forward", &softmax_forward, "softmax over the window keys only");
  m.def("window_backward", &window_backward, "softmax-backward terms on the window keys");
}
