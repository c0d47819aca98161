#include "send_matrix.h"

namespace send_matrix {

namespace {

std::vector<Shape> join(std::initializer_list<const std::vector<Shape>*> parts) {
  std::vector<Shape> all;
  for (auto* p : parts) all.insert(all.end(), p->begin(), p->end());
  return all;
}

template <typename F>
Cfg cfg(F set) {
  Cfg c;
  set(c);
  return c;
}

}  // namespace

std::vector<Row> rows() {
  const std::vector<Shape> one = {
      {"1x1", 1, 1, 1}, {"1x1024iov", 1, 1024, 1}, {"1024x1", 1, 1, 1024}};
  const std::vector<Shape> many = {{"3Bx512", 3, 1, 512}, {"5Bx100", 5, 1, 100}};
  const std::vector<Shape> large = {{"8192x32iov_x2", 8192, 32, 2}};
  const auto all = join({&one, &many, &large}), one_many = join({&one, &many});
  return {
      {"pass", Cfg{}, all},
      {"drop", cfg([](Cfg& c) { c.drop = 1; }), all},
      {"redirect", cfg([](Cfg& c) { c.redirect = 1; }), all},
      {"ingress redirect", cfg([](Cfg& c) { c.redirect = c.ingress = 1; }), all},
      {"apply 1", cfg([](Cfg& c) { c.apply = 1; }), one},
      {"apply 1 redirect", cfg([](Cfg& c) { c.apply = 1, c.redirect = 1; }), one},
      {"apply 1024", cfg([](Cfg& c) { c.apply = 1024; }), large},
      {"apply 1024 redirect", cfg([](Cfg& c) { c.apply = 1024, c.redirect = 1; }), large},
      {"cork 1", cfg([](Cfg& c) { c.cork = 1; }), all},
      {"apply 1 + cork 1", cfg([](Cfg& c) { c.apply = 1, c.cork = 1; }), one_many},
      {"cork 512", cfg([](Cfg& c) { c.cork = 512; }), many},
      {"cork 4097 (hanging)", cfg([](Cfg& c) { c.cork = 4097; }), one_many},
      {"cork 4097 redirect (hanging)", cfg([](Cfg& c) { c.cork = 4097, c.redirect = 1; }),
       one_many},
      {"push 1,1", cfg([](Cfg& c) { c.push_start = 1, c.push_len = 1; }), all},
      {"push 4096,4096", cfg([](Cfg& c) { c.push_start = 4096, c.push_len = 4096; }), large},
      {"push 1,2 redirect", cfg([](Cfg& c) { c.push_start = 1, c.push_len = 2, c.redirect = 1; }),
       all},
      {"pull 1..2", cfg([](Cfg& c) { c.pull_start = 1, c.pull_end = 2; }), all},
      {"pull 4096..9182", cfg([](Cfg& c) { c.pull_start = 4096, c.pull_end = 9182; }), large},
      {"pull 1..2 redirect", cfg([](Cfg& c) { c.pull_start = 1, c.pull_end = 2, c.redirect = 1; }),
       all},
      {"pop 1,2", cfg([](Cfg& c) { c.pop_start = 1, c.pop_len = 2; }), many},
      {"pop 4096,4096", cfg([](Cfg& c) { c.pop_start = 4096, c.pop_len = 4096; }), large},
      {"pop 1,2 redirect", cfg([](Cfg& c) { c.pop_start = 1, c.pop_len = 2, c.redirect = 1; }),
       many},
      {"pop 1,2 + cork 512", cfg([](Cfg& c) { c.pop_start = 1, c.pop_len = 2, c.cork = 512; }),
       many},
      {"push 1,2 + cork 512", cfg([](Cfg& c) { c.push_start = 1, c.push_len = 2, c.cork = 512; }),
       many},
      {"pull 1..2 + cork 512", cfg([](Cfg& c) { c.pull_start = 1, c.pull_end = 2, c.cork = 512; }),
       many},
      {"pull 1..2 + cork 512 redirect",
       cfg([](Cfg& c) { c.pull_start = 1, c.pull_end = 2, c.cork = 512, c.redirect = 1; }), many},
      {"pop 1,2 + cork 4 redirect",
       cfg([](Cfg& c) { c.pop_start = 1, c.pop_len = 2, c.cork = 4, c.redirect = 1; }), many},
      {"apply 1 ingress redirect", cfg([](Cfg& c) { c.apply = 1, c.redirect = c.ingress = 1; }),
       one},
      {"cork 512 ingress redirect", cfg([](Cfg& c) { c.cork = 512, c.redirect = c.ingress = 1; }),
       many},
      {"redirect wait send mem", cfg([](Cfg& c) { c.redirect = 1; }), large, true},
      {"push 1,10 + pop 5,4",
       cfg([](Cfg& c) { c.push_start = 1, c.push_len = 10, c.pop_start = 5, c.pop_len = 4; }),
       large},
  };
}

}  // namespace send_matrix
