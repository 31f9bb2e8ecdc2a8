// Subsets of a WindowSet by subject: the `subjects=` option of dataset specs, so that
// calibration, training and test sets can be named (e.g. spc2015:DIR?subjects=2-12).
#pragma once
#include <string>
#include <vector>

#include "datasets/dataset.h"

namespace pulsekd::data {

// Parses a subject list against ws: comma-separated items, each a 1-based subject number
// (in the set's subject order), a range A-B of them, or an exact subject name
// ("DATA_01_TYPE01", "S4"). Returns the distinct 0-based indices in set order. Throws
// std::runtime_error naming `what` and the bad item (unknown name, number out of 1..S,
// reversed range, empty list).
std::vector<int> parse_subject_list(const WindowSet& ws, const std::string& list, const std::string& what);

// The windows of the given subjects (0-based, distinct, increasing), re-indexed: subject k of
// the result is subjects[k] of ws. The source is kept.
WindowSet select_subjects(const WindowSet& ws, const std::vector<int>& subjects);

// The subjects of a followed by those of b (subject indices of b shifted), e.g. a training set
// and its --val-data. The source is "A + B".
WindowSet concat(const WindowSet& a, const WindowSet& b);

}  // namespace pulsekd::data
