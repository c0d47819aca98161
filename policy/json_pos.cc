#include "policy/json_pos.h"

#include <algorithm>
#include <charconv>
#include <cstring>

namespace sockshim::policy {

using json = nlohmann::ordered_json;

namespace {
constexpr int kMaxDepth = 128;
}

// Recursive descent over the text; each value's offset is recorded under its pointer.
class JsonReader {
 public:
  JsonReader(std::string_view text, JsonDoc& doc) : s_(text), doc_(doc) {}

  bool run(json& out) {
    skip_ws();
    if (!value(out, "", 0, 0)) return false;
    skip_ws();
    if (i_ != s_.size()) return fail("unexpected text after the JSON value");
    return true;
  }

 private:
  bool fail(std::string message) {
    if (!failed_) doc_.issues_.push_back({"", static_cast<uint32_t>(i_), std::move(message)});
    failed_ = true;
    return false;
  }

  void skip_ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r'))
      ++i_;
  }

  bool value(json& out, const std::string& ptr, uint32_t key_off, int depth) {
    if (depth > kMaxDepth) return fail("nesting deeper than 128 levels");
    doc_.pos_[ptr] = {key_off, static_cast<uint32_t>(i_)};
    if (i_ >= s_.size()) return fail("unexpected end of input, expected a value");
    switch (s_[i_]) {
      case '{':
        return object(out, ptr, depth);
      case '[':
        return array(out, ptr, depth);
      case '"': {
        std::string str;
        if (!string(str)) return false;
        out = std::move(str);
        return true;
      }
      case 't':
        return literal("true", out, json(true));
      case 'f':
        return literal("false", out, json(false));
      case 'n':
        return literal("null", out, json(nullptr));
      default:
        return number(out);
    }
  }

  bool literal(std::string_view word, json& out, json v) {
    if (s_.substr(i_, word.size()) != word) return fail("invalid literal, expected a value");
    i_ += word.size();
    out = std::move(v);
    return true;
  }

  bool object(json& out, const std::string& ptr, int depth) {
    out = json::object();
    ++i_;
    skip_ws();
    if (i_ < s_.size() && s_[i_] == '}') {
      ++i_;
      return true;
    }
    for (;;) {
      skip_ws();
      if (i_ >= s_.size() || s_[i_] != '"') return fail("expected a string key");
      const uint32_t key_off = static_cast<uint32_t>(i_);
      std::string key;
      if (!string(key)) return false;
      skip_ws();
      if (i_ >= s_.size() || s_[i_] != ':') return fail("expected ':' after an object key");
      ++i_;
      skip_ws();
      const std::string child = json_pointer_append(ptr, key);
      const bool dup = out.contains(key);
      JsonPos first{};
      if (dup) first = doc_.pos_[child];
      json v;
      if (!value(v, child, key_off, depth + 1)) return false;
      if (dup) {
        doc_.issues_.push_back({child, key_off, "duplicate key " + quote(key)});
        doc_.pos_[child] = first;
      } else {
        out.emplace(std::move(key), std::move(v));
      }
      skip_ws();
      if (i_ < s_.size() && s_[i_] == ',') {
        ++i_;
        continue;
      }
      if (i_ < s_.size() && s_[i_] == '}') {
        ++i_;
        return true;
      }
      return fail("expected ',' or '}' in an object");
    }
  }

  bool array(json& out, const std::string& ptr, int depth) {
    out = json::array();
    ++i_;
    skip_ws();
    if (i_ < s_.size() && s_[i_] == ']') {
      ++i_;
      return true;
    }
    for (size_t n = 0;; ++n) {
      skip_ws();
      json v;
      if (!value(v, json_pointer_append(ptr, std::to_string(n)), static_cast<uint32_t>(i_),
                 depth + 1))
        return false;
      out.push_back(std::move(v));
      skip_ws();
      if (i_ < s_.size() && s_[i_] == ',') {
        ++i_;
        continue;
      }
      if (i_ < s_.size() && s_[i_] == ']') {
        ++i_;
        return true;
      }
      return fail("expected ',' or ']' in an array");
    }
  }

  static bool is_digit(char c) { return c >= '0' && c <= '9'; }

  bool number(json& out) {
    const size_t start = i_;
    size_t j = i_;
    if (j < s_.size() && s_[j] == '-') ++j;
    if (j >= s_.size() || !is_digit(s_[j])) return fail("expected a value");
    if (s_[j] == '0') {
      ++j;
    } else {
      while (j < s_.size() && is_digit(s_[j])) ++j;
    }
    bool integer = true;
    if (j < s_.size() && s_[j] == '.') {
      integer = false;
      ++j;
      if (j >= s_.size() || !is_digit(s_[j])) return fail_at(j, "expected a digit after '.'");
      while (j < s_.size() && is_digit(s_[j])) ++j;
    }
    if (j < s_.size() && (s_[j] == 'e' || s_[j] == 'E')) {
      integer = false;
      ++j;
      if (j < s_.size() && (s_[j] == '+' || s_[j] == '-')) ++j;
      if (j >= s_.size() || !is_digit(s_[j])) return fail_at(j, "expected a digit in the exponent");
      while (j < s_.size() && is_digit(s_[j])) ++j;
    }
    const char* b = s_.data() + start;
    const char* e = s_.data() + j;
    i_ = j;
    if (integer) {
      if (*b == '-') {
        int64_t v;
        if (std::from_chars(b, e, v).ec == std::errc()) {
          out = v;
          return true;
        }
      } else {
        uint64_t v;
        if (std::from_chars(b, e, v).ec == std::errc()) {
          out = v;
          return true;
        }
      }
    }
    double d = 0;
    std::from_chars(b, e, d);
    out = d;
    return true;
  }

  bool fail_at(size_t j, std::string message) {
    i_ = j;
    return fail(std::move(message));
  }

  static void put_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  bool hex4(uint32_t& cp) {
    if (i_ + 4 > s_.size()) return fail("truncated \\u escape");
    cp = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = s_[i_++];
      cp <<= 4;
      if (is_digit(c))
        cp |= static_cast<uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f')
        cp |= static_cast<uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        cp |= static_cast<uint32_t>(c - 'A' + 10);
      else
        return fail_at(i_ - 1, "invalid hex digit in a \\u escape");
    }
    return true;
  }

  bool string(std::string& out) {
    ++i_;  // opening quote
    for (;;) {
      if (i_ >= s_.size()) return fail("unterminated string");
      const char c = s_[i_];
      if (c == '"') {
        ++i_;
        return true;
      }
      if (static_cast<unsigned char>(c) < 0x20) return fail("control character in a string");
      if (c != '\\') {
        out += c;
        ++i_;
        continue;
      }
      if (++i_ >= s_.size()) return fail("unterminated string");
      const char esc = s_[i_++];
      switch (esc) {
        case '"':
        case '\\':
        case '/':
          out += esc;
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          uint32_t cp;
          if (!hex4(cp)) return false;
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t lo;
            if (s_.substr(i_, 2) != "\\u") return fail("unpaired surrogate in a \\u escape");
            i_ += 2;
            if (!hex4(lo)) return false;
            if (lo < 0xDC00 || lo > 0xDFFF) return fail("unpaired surrogate in a \\u escape");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return fail("unpaired surrogate in a \\u escape");
          }
          put_utf8(out, cp);
          break;
        }
        default:
          return fail_at(i_ - 1, "invalid escape in a string");
      }
    }
  }

  std::string_view s_;
  JsonDoc& doc_;
  size_t i_ = 0;
  bool failed_ = false;
};

JsonDoc JsonDoc::parse(std::string_view text) {
  JsonDoc doc;
  doc.line_starts_.push_back(0);
  for (size_t i = 0; i < text.size(); ++i)
    if (text[i] == '\n') doc.line_starts_.push_back(static_cast<uint32_t>(i + 1));
  if (text.size() > UINT32_MAX) {
    doc.issues_.push_back({"", 0, "file larger than 4 GiB"});
    return doc;
  }
  json v;
  if (JsonReader(text, doc).run(v)) doc.value_ = std::move(v);
  return doc;
}

JsonPos JsonDoc::pos(const std::string& pointer) const {
  std::string p = pointer;
  for (;;) {
    if (auto it = pos_.find(p); it != pos_.end()) return it->second;
    if (p.empty()) return {};
    p.erase(p.rfind('/'));
  }
}

LineCol JsonDoc::line_col(uint32_t offset) const {
  auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
  const size_t line = static_cast<size_t>(it - line_starts_.begin());
  return {static_cast<int>(line), static_cast<int>(offset - line_starts_[line - 1] + 1)};
}

std::string json_pointer_append(const std::string& pointer, std::string_view token) {
  std::string out = pointer;
  out += '/';
  for (char c : token) {
    if (c == '~')
      out += "~0";
    else if (c == '/')
      out += "~1";
    else
      out += c;
  }
  return out;
}

std::string quote(std::string_view text) {
  return json(std::string(text)).dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace sockshim::policy
