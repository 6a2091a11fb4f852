// The YAML reading layer (see yaml_reader.h): typed scalar parsing with ranges
// and durations, the walk of a document against a schema of sections and
// fields (unknown, duplicate and malformed keys), positions and
// FILE:LINE:COLUMN errors. The only file in billing-gateway that includes
// yaml-cpp.
#include "config/yaml_reader.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"

namespace bg::config::internal {

std::string Quote(absl::string_view text) {
  constexpr size_t kMax = 64;
  std::string shown = absl::CHexEscape(text.substr(0, kMax));
  return absl::StrCat("\"", shown, text.size() > kMax ? "...\"" : "\"");
}

std::string FormatDouble(double value) {
  char buf[400];
  auto fixed =
      std::to_chars(buf, buf + sizeof(buf), value, std::chars_format::fixed);
  if (fixed.ec == std::errc() && fixed.ptr - buf <= 24)
    return std::string(buf, fixed.ptr);
  auto shortest = std::to_chars(buf, buf + sizeof(buf), value);
  return std::string(buf, shortest.ptr);
}

std::string YamlString(absl::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (u < 0x20 || u == 0x7f) {
      absl::StrAppend(&out, "\\x", absl::Hex(u, absl::kZeroPad2));
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

bool HasControlCharacter(absl::string_view text) {
  return std::any_of(text.begin(), text.end(), [](char c) {
    return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
  });
}

// --- Fields -----------------------------------------------------------------

std::optional<std::string> ParseInt(const std::string& text, int64_t lo,
                                    int64_t hi, int64_t& value) {
  if (!absl::SimpleAtoi(text, &value)) {
    return absl::StrCat("expected an integer, got ", Quote(text));
  }
  if (value < lo || value > hi) {
    return absl::StrCat("must be between ", lo, " and ", hi, ", got ", value);
  }
  return std::nullopt;
}

namespace {

std::string Describe(const DoubleRange& r) {
  return absl::StrCat(r.lo_inclusive ? ">= " : "> ", FormatDouble(r.lo),
                      " and <= ", FormatDouble(r.hi));
}

}  // namespace

Field DoubleField(absl::string_view name, double* out, DoubleRange range) {
  return {name, "a number",
          [=](const std::string& text) -> std::optional<std::string> {
            double value;
            if (!absl::SimpleAtod(text, &value) || !std::isfinite(value)) {
              return absl::StrCat("expected a number, got ", Quote(text));
            }
            bool above_lo =
                range.lo_inclusive ? value >= range.lo : value > range.lo;
            if (!above_lo || value > range.hi) {
              return absl::StrCat("must be ", Describe(range), ", got ",
                                  FormatDouble(value));
            }
            *out = value;
            return std::nullopt;
          }};
}

std::optional<std::string> ParseDuration(const std::string& text,
                                         absl::Duration lo, absl::Duration hi,
                                         std::chrono::milliseconds& out) {
  absl::Duration value;
  if (!absl::ParseDuration(text, &value) || value == absl::InfiniteDuration() ||
      value == -absl::InfiniteDuration()) {
    return absl::StrCat("expected ", kExpectedDuration, ", got ", Quote(text));
  }
  if (value < lo || value > hi) {
    return absl::StrCat("must be between ", absl::FormatDuration(lo), " and ",
                        absl::FormatDuration(hi), ", got ",
                        absl::FormatDuration(value));
  }
  if (absl::Trunc(value, absl::Milliseconds(1)) != value) {
    return absl::StrCat("must be a whole number of milliseconds, got ",
                        absl::FormatDuration(value));
  }
  out = absl::ToChronoMilliseconds(value);
  return std::nullopt;
}

Field StringField(absl::string_view name, std::string* out, StringCheck check) {
  return {name, "a string",
          [=](const std::string& text) -> std::optional<std::string> {
            if (check) {
              if (auto error = check(text)) return error;
            }
            *out = text;
            return std::nullopt;
          }};
}

Field SecretField(absl::string_view name, std::string* out) {
  return StringField(name, out);
}

// --- Positions and errors ---------------------------------------------------

absl::Status Positions::Error(Position at, absl::string_view path,
                              absl::string_view message) const {
  int line = at.line >= 0 ? at.line + 1 : 1;
  int column = at.column >= 0 ? at.column + 1 : 1;
  return absl::InvalidArgumentError(absl::StrCat(
      file_name_, ":", line, ":", column, ": ", path.empty() ? "" : path,
      path.empty() ? "" : ": ", message));
}

Position Positions::Of(const std::string& path) const {
  auto it = positions_.find(path);
  return it == positions_.end() ? Position{} : it->second;
}

// --- The walk ---------------------------------------------------------------

namespace {

Position At(const YAML::Mark& mark) { return {mark.line, mark.column}; }

absl::string_view NodeKind(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a sequence";
    case YAML::NodeType::Null:
      return "nothing";
    default:
      return "a scalar";
  }
}

// yaml-cpp 0.7 (Debian 12) loops forever, allocating until the process is
// killed, when YAML::LoadAll meets some malformed streams such as a lone ","
// (jbeder/yaml-cpp#1040, fixed upstream by #1319 after 0.8.0): the parser keeps
// reporting a new empty document without consuming the token. Found by
// fuzz/config_fuzzer.cc. So documents are walked with the event parser and the
// walk stops at the second one; only then is the (single) document loaded.
class DocumentCounter : public YAML::EventHandler {
 public:
  // Documents in `text`, counted up to 2, and the mark of the second one's root
  // node. Throws YAML::ParserException like YAML::LoadAll.
  static DocumentCounter Count(const std::string& text) {
    std::stringstream in(text);
    YAML::Parser parser(in);
    DocumentCounter counter;
    while (counter.documents_ < 2 && parser.HandleNextDocument(counter)) {
    }
    return counter;
  }
  int documents() const { return documents_; }
  const YAML::Mark& second_root() const { return second_root_; }

  void OnDocumentStart(const YAML::Mark&) override { ++documents_; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& m, YAML::anchor_t) override { Node(m); }
  void OnAlias(const YAML::Mark& m, YAML::anchor_t) override { Node(m); }
  void OnScalar(const YAML::Mark& m, const std::string&, YAML::anchor_t,
                const std::string&) override {
    Node(m);
  }
  void OnSequenceStart(const YAML::Mark& m, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    Node(m);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& m, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    Node(m);
  }
  void OnMapEnd() override {}

 private:
  void Node(const YAML::Mark& m) {
    if (documents_ == 2 && !seen_second_root_) {
      second_root_ = m;
      seen_second_root_ = true;
    }
  }
  int documents_ = 0;
  bool seen_second_root_ = false;
  YAML::Mark second_root_ = YAML::Mark::null_mark();
};

class Walk {
 public:
  Walk(const std::vector<Section>& schema, Positions& positions)
      : schema_(schema), positions_(positions) {}

  absl::Status Read(absl::string_view yaml_text) {
    std::vector<YAML::Node> documents;
    try {
      const std::string text(yaml_text);
      const DocumentCounter counter = DocumentCounter::Count(text);
      if (counter.documents() > 1) {
        return Error(counter.second_root(), "",
                     "expected one YAML document, found several");
      }
      if (counter.documents() == 1) documents.push_back(YAML::Load(text));
    } catch (const YAML::ParserException& e) {
      // Cut at ": ", after which yaml-cpp appends input characters (maybe a
      // secret's).
      std::string message = e.msg.substr(0, e.msg.find(": "));
      return Error(e.mark, "", absl::StrCat("YAML syntax error: ", message));
    }
    if (documents.size() > 1) {
      return Error(documents[1].Mark(), "",
                   "expected one YAML document, found several");
    }
    if (documents.empty()) return absl::OkStatus();
    return ReadRoot(documents[0]);
  }

 private:
  absl::Status Error(const YAML::Mark& mark, absl::string_view path,
                     absl::string_view message) const {
    return positions_.Error(At(mark), path, message);
  }

  // Where to point at a value: a null (absent) value has no useful position of
  // its own.
  static YAML::Mark ValueMark(const YAML::Node& key, const YAML::Node& value) {
    return value.IsNull() ? key.Mark() : value.Mark();
  }

  // Iterates `map`'s entries, refusing non-scalar and duplicate keys; calls
  // visit(key_name, key_node, value_node) for each.
  template <typename Visit>
  absl::Status ForEachEntry(const YAML::Node& map, absl::string_view path,
                            Visit visit) {
    std::map<std::string, int>
        seen;  // key -> 1-based line of its first occurrence.
    for (const auto& entry : map) {
      const YAML::Node& key = entry.first;
      if (!key.IsScalar()) {
        return Error(key.Mark(), path,
                     absl::StrCat("expected a key name, got ", NodeKind(key)));
      }
      const std::string& name = key.Scalar();
      std::string full = path.empty() ? name : absl::StrCat(path, ".", name);
      auto [it, inserted] = seen.emplace(name, key.Mark().line + 1);
      if (!inserted) {
        return Error(
            key.Mark(), full,
            absl::StrCat("duplicate key (first set on line ", it->second, ")"));
      }
      if (absl::Status s = visit(name, full, key, entry.second); !s.ok())
        return s;
    }
    return absl::OkStatus();
  }

  absl::Status ReadRoot(const YAML::Node& root) {
    if (root.IsNull()) return absl::OkStatus();
    const std::vector<Section>& schema = schema_;
    std::vector<absl::string_view> section_names;
    for (const Section& s : schema) section_names.push_back(s.name);
    if (!root.IsMap()) {
      return Error(root.Mark(), "",
                   absl::StrCat("expected a map of sections (",
                                absl::StrJoin(section_names, ", "), "), got ",
                                NodeKind(root)));
    }
    return ForEachEntry(
        root, "",
        [&](const std::string& name, const std::string& path,
            const YAML::Node& key, const YAML::Node& value) -> absl::Status {
          auto section =
              std::find_if(schema.begin(), schema.end(),
                           [&](const Section& s) { return s.name == name; });
          if (section == schema.end()) {
            return Error(key.Mark(), path,
                         absl::StrCat("unknown section; expected one of ",
                                      absl::StrJoin(section_names, ", ")));
          }
          return ReadSection(*section, path, key, value);
        });
  }

  absl::Status ReadSection(const Section& section, const std::string& path,
                           const YAML::Node& key, const YAML::Node& value) {
    // "server:" with every key commented out is an empty section, not an error.
    if (value.IsNull()) return absl::OkStatus();
    if (!value.IsMap()) {
      return Error(value.Mark(), path,
                   absl::StrCat("expected a map, got ", NodeKind(value)));
    }
    return ForEachEntry(
        value, path,
        [&](const std::string& name, const std::string& full,
            const YAML::Node& k, const YAML::Node& v) -> absl::Status {
          auto field =
              std::find_if(section.fields.begin(), section.fields.end(),
                           [&](const Field& f) { return f.name == name; });
          if (field == section.fields.end()) {
            std::vector<absl::string_view> names;
            for (const Field& f : section.fields) names.push_back(f.name);
            return Error(k.Mark(), full,
                         absl::StrCat("unknown key; expected one of ",
                                      absl::StrJoin(names, ", ")));
          }
          return ReadField(*field, full, k, v);
        });
  }

  absl::Status ReadField(const Field& field, const std::string& path,
                         const YAML::Node& key, const YAML::Node& value) {
    YAML::Mark at = ValueMark(key, value);
    if (value.IsNull()) {
      return Error(at, path,
                   absl::StrCat("has no value; expected ", field.expected,
                                " (delete the key to use the default)"));
    }
    if (!value.IsScalar()) {
      return Error(
          at, path,
          absl::StrCat("expected ", field.expected, ", got ", NodeKind(value)));
    }
    if (std::optional<std::string> error = field.set(value.Scalar())) {
      return Error(at, path, *error);
    }
    positions_.Set(path, At(at));
    return absl::OkStatus();
  }

  const std::vector<Section>& schema_;
  Positions& positions_;
};

}  // namespace

absl::Status ReadYaml(absl::string_view yaml_text,
                      const std::vector<Section>& schema,
                      Positions& positions) {
  try {
    return Walk(schema, positions).Read(yaml_text);
  } catch (const YAML::Exception& e) {
    // Not expected (the walk only uses non-throwing accessors), but never let
    // one out.
    return positions.Error(At(e.mark), "", "YAML error");
  }
}

}  // namespace bg::config::internal
