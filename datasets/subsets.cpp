#include "datasets/subsets.h"

#include <algorithm>
#include <sstream>
#include <stdexcept>

namespace pulsekd::data {
namespace {

// A whole positive number, or -1.
long whole_number(const std::string& s) {
  if (s.empty() || s.size() > 9 || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) return -1;
  return std::stol(s);
}

}  // namespace

std::vector<int> parse_subject_list(const WindowSet& ws, const std::string& list, const std::string& what) {
  const long n = static_cast<long>(ws.subjects.size());
  const auto fail = [&](const std::string& item, const std::string& why) {
    throw std::runtime_error(what + ": subject '" + item + "' " + why + " (the set has " + std::to_string(n) +
                             " subjects, numbered 1-" + std::to_string(n) + " in order)");
  };
  std::vector<char> chosen(n, 0);  // (S)
  std::stringstream ss(list);
  std::string item;
  int items = 0;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    ++items;
    const auto named = std::find_if(ws.subjects.begin(), ws.subjects.end(), [&](const SubjectInfo& s) { return s.name == item; });
    if (named != ws.subjects.end()) {
      chosen[named - ws.subjects.begin()] = 1;
      continue;
    }
    const size_t dash = item.find('-');
    const long a = whole_number(item.substr(0, dash));
    const long b = dash == std::string::npos ? a : whole_number(item.substr(dash + 1));
    if (a < 0 || b < 0) fail(item, "is neither a subject name nor a number or range A-B");
    if (a < 1 || b > n) fail(item, "is out of range");
    if (a > b) fail(item, "is a reversed range");
    for (long k = a; k <= b; ++k) chosen[k - 1] = 1;
  }
  if (items == 0) throw std::runtime_error(what + ": the subject list is empty");
  std::vector<int> out;
  for (long k = 0; k < n; ++k)
    if (chosen[k]) out.push_back(static_cast<int>(k));
  return out;
}

WindowSet select_subjects(const WindowSet& ws, const std::vector<int>& subjects) {
  WindowSet out;
  out.source = ws.source;
  const int64_t stride = int64_t(kRows) * kWindow;
  for (size_t k = 0; k < subjects.size(); ++k) {
    const int s = subjects[k];
    if (s < 0 || s >= static_cast<int>(ws.subjects.size()) || (k > 0 && s <= subjects[k - 1]))
      throw std::invalid_argument("select_subjects: indices must be distinct, increasing and in range");
    SubjectInfo info = ws.subjects[s];
    info.first_window = out.size();
    const int64_t first = ws.subjects[s].first_window, count = ws.subjects[s].num_windows;
    out.x.insert(out.x.end(), ws.x.begin() + first * stride, ws.x.begin() + (first + count) * stride);
    out.hr.insert(out.hr.end(), ws.hr.begin() + first, ws.hr.begin() + first + count);
    if (ws.has_ppg2())
      out.ppg2.insert(out.ppg2.end(), ws.ppg2.begin() + first * kWindow, ws.ppg2.begin() + (first + count) * kWindow);
    out.subject.insert(out.subject.end(), count, static_cast<int32_t>(k));
    out.subjects.push_back(info);
  }
  return out;
}

WindowSet concat(const WindowSet& a, const WindowSet& b) {
  WindowSet out = a;
  out.source = a.source + " + " + b.source;
  const int32_t shift = static_cast<int32_t>(a.subjects.size());
  out.x.insert(out.x.end(), b.x.begin(), b.x.end());
  out.hr.insert(out.hr.end(), b.hr.begin(), b.hr.end());
  // The second PPG channel is kept only when every window has one (an empty part has none to lack).
  if ((a.size() == 0 || a.has_ppg2()) && (b.size() == 0 || b.has_ppg2()))
    out.ppg2.insert(out.ppg2.end(), b.ppg2.begin(), b.ppg2.end());
  else
    out.ppg2.clear();
  for (int32_t s : b.subject) out.subject.push_back(s + shift);
  for (SubjectInfo info : b.subjects) {
    info.first_window += a.size();
    out.subjects.push_back(info);
  }
  return out;
}

}  // namespace pulsekd::data
