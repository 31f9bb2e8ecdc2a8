// A pickle virtual machine (protocols 0-5) that builds a tree of values and never executes
// anything: GLOBAL/STACK_GLOBAL only record "module.name" (a caller-supplied allow-list
// decides which may appear), REDUCE/NEWOBJ record callable + args (a caller-supplied hook may
// turn known callables into values), BUILD records the state.
// Built in: collections.OrderedDict() -> Dict; set/frozenset -> List;
// _codecs.encode(str, 'latin1') and bytearray(...) -> Bytes (how Python 3 writes bytes with
// protocol 2). Python-2 byte strings (STRING/BINSTRING/SHORT_BINSTRING) stay Bytes: callers
// decode them (as Python's encoding='latin1' would).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace pulsekd::data {

class PickleError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct PyObject;
using PyRef = std::shared_ptr<PyObject>;

struct PyObject {
  enum class Kind { None, Bool, Int, Float, Str, Bytes, Tuple, List, Dict, Global, Object, PersistentId };
  Kind kind = Kind::None;
  bool b = false;               // Bool
  int64_t i = 0;                // Int
  double f = 0;                 // Float
  std::string s;                // Str (UTF-8), Bytes (raw), Global: module
  std::string name;             // Global: name
  std::vector<PyRef> items;     // Tuple/List elements; Dict values (parallel to keys)
  std::vector<PyRef> keys;      // Dict keys, insertion order
  std::unordered_map<std::string, size_t> key_index;  // Dict: canonical key -> position
  PyRef callable;               // Object: what REDUCE/NEWOBJ called (usually a Global)
  PyRef args;                   // Object: argument tuple; PersistentId: the payload
  PyRef kwargs;                 // Object: NEWOBJ_EX keyword dict (else null)
  PyRef state;                  // Object: BUILD state (else null)
  bool newobj = false;          // Object: created by NEWOBJ(_EX) rather than REDUCE
  uint64_t offset = 0;          // byte offset of the opcode that made it (for messages)

  bool is(Kind k) const { return kind == k; }
  bool is_global(const char* module, const char* name) const;
  // Object whose callable is the Global module.name.
  bool is_call_of(const char* module, const char* name) const;
  // Str or Bytes contents (Python-2 strings arrive as Bytes).
  bool is_text() const { return kind == Kind::Str || kind == Kind::Bytes; }
  // Dict lookup by a Str or Bytes key with these bytes; nullptr when absent or not a Dict.
  PyRef get(const std::string& key) const;
  // "int", "str", "numpy.dtype(...)" ... for messages.
  std::string type_name() const;
};

// Canonical form of a hashable value, used as a Dict key (Python equality: True == 1 == 1.0).
// Throws PickleError for unhashable values (list, dict, object).
std::string pickle_key(const PyObject& key);

struct PickleOptions {
  // Which globals may appear (module, name as written in the pickle). Unset: only the
  // built-ins above. A refused global is an error naming "module.name" and its offset.
  std::function<bool(const std::string& module, const std::string& name)> allow_global;
  // Rewrites callable(args) at REDUCE/NEWOBJ; return nullptr to keep a generic Object.
  // May throw (the VM adds nothing: put file and offset in the message).
  std::function<PyRef(const PyRef& callable, const PyRef& args, uint64_t offset)> reduce;
  // Deeper containers are refused (bounds recursion in consumers and in destruction).
  size_t max_depth = 512;
};

// `what` names the source (a file name) in error messages, which also give the byte offset.
// The result is acyclic and at most max_depth deep (recursive structures are refused).
PyRef unpickle(const uint8_t* data, size_t size, const std::string& what,
               const PickleOptions& options = {});

// Helpers shared by the readers. Each throws PickleError("<what>: <context>: expected ...").
const std::string& pickle_text(const PyRef& v, const std::string& what, const std::string& context);
int64_t pickle_int(const PyRef& v, const std::string& what, const std::string& context);

}  // namespace pulsekd::data
