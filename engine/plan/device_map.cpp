#include "plan/device_map.h"

#include "core/error.h"
#include "model/module_tree.h"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

namespace layerwise {

using nlohmann::json;

namespace {

bool covers(const std::string& key, const std::string& name)
{
    return key.empty() || name == key || (name.size() > key.size() && name.compare(0, key.size(), key) == 0 &&
                                          name[key.size()] == '.');
}

json device_json(const Device& d)
{
    return d.is_gpu() ? json(d.index) : json(d.name());
}

Device device_from_json(const json& v, const std::string& key)
{
    try {
        if (v.is_number_integer())
            return parse_device(std::to_string(v.get<std::int64_t>()));
        if (v.is_string())
            return parse_device(v.get<std::string>());
    } catch (const PlanError& e) {
        throw PlanError("device_map['" + key + "']: " + e.what());
    }
    throw PlanError("device_map['" + key + "'] = " + v.dump() + " is not a device (0, \"cuda:0\", \"cpu\" or \"disk\")");
}

// Python dict printout -> JSON: single quotes to double quotes (module names hold no quotes).
std::string python_dict_to_json(const std::string& text)
{
    std::string out;
    out.reserve(text.size());
    for (char c : text)
        out += c == '\'' ? '"' : c;
    // OrderedDict([('a', 0), ...]) is also what older versions print.
    const auto start = out.find("OrderedDict(");
    if (start != std::string::npos) {
        nlohmann::ordered_json pairs;
        std::string inner = out.substr(start + 12);
        inner = inner.substr(0, inner.rfind(')'));
        for (char& c : inner)
            c = c == '(' ? '[' : c == ')' ? ']' : c;
        pairs = nlohmann::ordered_json::parse(inner);
        nlohmann::ordered_json obj = nlohmann::ordered_json::object();
        for (const auto& p : pairs)
            obj[p.at(0).get<std::string>()] = p.at(1);
        return obj.dump();
    }
    return out;
}

} // namespace

json device_map_to_json(const DeviceMap& map)
{
    json j = json::object();
    for (const auto& [k, d] : map)
        j[k] = device_json(d);
    return j;
}

std::string device_map_to_text(const DeviceMap& map)
{
    nlohmann::ordered_json j = nlohmann::ordered_json::object();
    for (const auto& [k, d] : map)
        j[k] = d.is_gpu() ? nlohmann::ordered_json(d.index) : nlohmann::ordered_json(d.name());
    return j.dump(1);
}

DeviceMap device_map_from_json(const json& j)
{
    if (!j.is_object())
        throw PlanError("a device map must be an object of module name -> device, not " + j.dump().substr(0, 40));
    DeviceMap map;
    for (auto it = j.begin(); it != j.end(); ++it)
        map.emplace_back(it.key(), device_from_json(it.value(), it.key()));
    return map;
}

DeviceMap parse_device_map(const std::string& text)
{
    // ordered_json keeps the user's key order.
    nlohmann::ordered_json j;
    try {
        j = nlohmann::ordered_json::parse(text);
    } catch (const nlohmann::json::exception&) {
        try {
            j = nlohmann::ordered_json::parse(python_dict_to_json(text));
        } catch (const nlohmann::json::exception& e) {
            throw PlanError(std::string("the device map is neither JSON nor a Python dict printout (") + e.what() + ")");
        }
    }
    if (!j.is_object())
        throw PlanError("a device map must be an object of module name -> device");
    DeviceMap map;
    std::set<std::string> seen;
    for (auto it = j.begin(); it != j.end(); ++it) {
        if (!seen.insert(it.key()).second)
            throw PlanError("device_map names '" + it.key() + "' twice");
        map.emplace_back(it.key(), device_from_json(json(it.value()), it.key()));
    }
    return map;
}

const Device* device_of(const DeviceMap& map, const std::string& tensor_name)
{
    const Device* best = nullptr;
    std::size_t best_len = 0;
    for (const auto& [k, d] : map)
        if (covers(k, tensor_name) && (!best || k.size() >= best_len)) {
            best = &d;
            best_len = k.size();
        }
    return best;
}

void validate_device_map(const ModuleTree& tree, const DeviceMap& map)
{
    if (map.empty())
        throw PlanError("the device map is empty; give every module a device (\"\": 0 puts the whole model on GPU 0)");
    // Each key names a module or a tensor; remember which.
    std::vector<int> node_key(tree.nodes().size(), -1);
    std::map<std::string, int> tensor_key;
    for (std::size_t i = 0; i < map.size(); ++i) {
        const std::string& k = map[i].first;
        const int node = tree.find(k);
        if (node >= 0) {
            node_key[static_cast<std::size_t>(node)] = static_cast<int>(i);
        } else if (tree.find_tensor(k)) {
            tensor_key[k] = static_cast<int>(i);
        } else {
            throw PlanError("device_map key '" + k + "' matches no module or tensor of " + tree.root().class_name +
                            " (module names look like '" + tree.nodes()[std::min<std::size_t>(2, tree.nodes().size() - 1)].name +
                            "')");
        }
    }
    // Walk the tree with the key inherited from the nearest placed ancestor.
    std::vector<int> inherited(tree.nodes().size(), -1);
    for (std::size_t i = 0; i < tree.nodes().size(); ++i) {
        const ModuleNode& n = tree.nodes()[i];
        const int from_parent = n.parent >= 0 ? inherited[static_cast<std::size_t>(n.parent)] : -1;
        if (node_key[i] >= 0 && from_parent >= 0)
            throw PlanError("device_map keys '" + map[static_cast<std::size_t>(from_parent)].first + "' and '" +
                            map[static_cast<std::size_t>(node_key[i])].first + "' both place " + n.name +
                            "; give each module exactly one device");
        inherited[i] = node_key[i] >= 0 ? node_key[i] : from_parent;
        for (const auto& t : n.tensors) {
            auto tk = tensor_key.find(t.full_name);
            if (tk != tensor_key.end() && inherited[i] >= 0)
                throw PlanError("device_map keys '" + map[static_cast<std::size_t>(inherited[i])].first + "' and '" +
                                t.full_name + "' both place " + t.full_name + "; give each module exactly one device");
            if (tk == tensor_key.end() && inherited[i] < 0 && t.tied_to.empty())
                throw PlanError("the device map gives no device to '" + t.full_name + "'; add '" + n.name +
                                "' (or a module containing it) to the map");
        }
    }
    // No-split blocks: every key at or below the block on one device, experts aside (a layer's
    // experts may sit elsewhere: the hidden rows they take cross over, not the weights).
    for (std::size_t i = 0; i < tree.nodes().size(); ++i) {
        const ModuleNode& n = tree.nodes()[i];
        if (!n.no_split || (node_key[i] >= 0) || inherited[i] >= 0)
            continue;
        std::set<std::string> devices;
        std::vector<int> stack{static_cast<int>(i)};
        while (!stack.empty()) {
            const auto& m = tree.nodes()[static_cast<std::size_t>(stack.back())];
            const int key = node_key[static_cast<std::size_t>(stack.back())];
            stack.pop_back();
            if (m.expert_list)
                continue;
            if (key >= 0)
                devices.insert(map[static_cast<std::size_t>(key)].second.name());
            for (const auto& t : m.tensors)
                if (auto tk = tensor_key.find(t.full_name); tk != tensor_key.end())
                    devices.insert(map[static_cast<std::size_t>(tk->second)].second.name());
            stack.insert(stack.end(), m.children.begin(), m.children.end());
        }
        if (devices.size() > 1)
            throw PlanError("the device map splits " + n.name + " (" + n.class_name + ") across " +
                            std::to_string(devices.size()) + " devices; a " + n.class_name +
                            " must stay whole on one device (its residual connections need all its weights together)");
    }
}

DeviceMap clean_device_map(DeviceMap map)
{
    // Recursion over module names, as accelerate's clean_device_map.
    auto clean = [&](auto&& self, const std::string& module) -> void {
        const std::string prefix = module.empty() ? "" : module + ".";
        std::vector<Device> values;
        for (const auto& [k, d] : map)
            if (k.compare(0, prefix.size(), prefix) == 0)
                values.push_back(d);
        const bool one_device = !values.empty() &&
                                std::all_of(values.begin(), values.end(), [&](const Device& d) { return d == values[0]; });
        if (one_device && values.size() > 1) {
            const Device d = values[0];
            std::erase_if(map, [&](const auto& e) { return e.first.compare(0, prefix.size(), prefix) == 0; });
            map.emplace_back(module, d);
        }
        const std::size_t depth = module.empty() ? 1 : static_cast<std::size_t>(std::count(module.begin(), module.end(), '.')) + 2;
        std::set<std::string> children;
        for (const auto& [k, d] : map) {
            if (k.compare(0, prefix.size(), prefix) != 0 || k.size() <= module.size())
                continue;
            std::size_t cut = 0;
            std::size_t parts = 0;
            while (parts < depth && cut != std::string::npos) {
                cut = k.find('.', cut == 0 && parts == 0 ? 0 : cut + 1);
                ++parts;
            }
            children.insert(cut == std::string::npos ? k : k.substr(0, cut));
        }
        for (const auto& c : children)
            self(self, c);
    };
    clean(clean, "");
    return map;
}

namespace {

// The finest keys a map needs: no-split blocks, leaf modules, and the direct tensors of
// modules that have children. Each gets the device its tensors have under `map`
// (a tied tensor follows the tensor it is tied to).
DeviceMap expand_to_units(const ModuleTree& tree, const DeviceMap& map)
{
    validate_device_map(tree, map);
    auto device_for = [&](const ModuleTensor& t) -> const Device* {
        if (const Device* d = device_of(map, t.full_name))
            return d;
        return t.tied_to.empty() ? nullptr : device_of(map, t.tied_to);
    };
    auto first_device = [&](int node) -> const Device* {
        std::vector<int> stack{node};
        while (!stack.empty()) {
            const auto& n = tree.nodes()[static_cast<std::size_t>(stack.back())];
            stack.pop_back();
            for (const auto& t : n.tensors)
                if (const Device* d = device_for(t))
                    return d;
            stack.insert(stack.end(), n.children.rbegin(), n.children.rend());
        }
        return nullptr;
    };
    DeviceMap out;
    std::vector<int> stack{0};
    while (!stack.empty()) {
        const int i = stack.back();
        stack.pop_back();
        const ModuleNode& n = tree.nodes()[static_cast<std::size_t>(i)];
        // A mixture-of-experts block is expanded down to its experts, each a unit of its own.
        const bool whole = (n.no_split && tree.experts_under(i).empty()) || n.expert >= 0;
        if (whole || n.children.empty()) {
            // A leaf module whose tensors were mapped one by one keeps per-tensor keys.
            bool per_tensor = false;
            for (const auto& t : n.tensors)
                for (const auto& [k, d] : map)
                    per_tensor = per_tensor || (!whole && k == t.full_name);
            if (per_tensor) {
                for (const auto& t : n.tensors)
                    if (const Device* d = device_for(t))
                        out.emplace_back(t.full_name, *d);
            } else if (const Device* d = first_device(i)) {
                out.emplace_back(n.name, *d);
            }
            continue;
        }
        for (const auto& t : n.tensors)
            if (const Device* d = device_for(t))
                out.emplace_back(t.full_name, *d);
        stack.insert(stack.end(), n.children.rbegin(), n.children.rend());
    }
    return out;
}

} // namespace

DeviceMap move_layers(const ModuleTree& tree, const DeviceMap& map, int first_layer, int last_layer, const Device& device)
{
    const auto blocks = tree.no_split_blocks();
    if (blocks.empty() || first_layer < 0 || last_layer < first_layer || last_layer >= static_cast<int>(blocks.size()))
        throw PlanError("layers " + std::to_string(first_layer) + ".." + std::to_string(last_layer) +
                        " do not exist; the model has layers 0.." + std::to_string(static_cast<int>(blocks.size()) - 1));
    DeviceMap units = expand_to_units(tree, map);
    for (int l = first_layer; l <= last_layer; ++l) {
        const std::string& name = tree.nodes()[static_cast<std::size_t>(blocks[static_cast<std::size_t>(l)])].name;
        for (auto& [k, d] : units)
            if (covers(name, k))
                d = device;
    }
    return clean_device_map(std::move(units));
}

DeviceMap move_module(const ModuleTree& tree, const DeviceMap& map, const std::string& module, const Device& device)
{
    const int node = tree.find(module);
    if (node < 0)
        throw PlanError("no module '" + module + "' in " + tree.root().class_name);
    for (int p = tree.nodes()[static_cast<std::size_t>(node)].parent; p >= 0 && !tree.in_experts(node);
         p = tree.nodes()[static_cast<std::size_t>(p)].parent)
        if (tree.nodes()[static_cast<std::size_t>(p)].no_split)
            throw PlanError(module + " is part of " + tree.nodes()[static_cast<std::size_t>(p)].name + " (" +
                            tree.nodes()[static_cast<std::size_t>(p)].class_name +
                            "), which must stay whole on one device; move the whole block instead");
    DeviceMap units = expand_to_units(tree, map);
    for (auto& [k, d] : units)
        if (covers(module, k))
            d = device;
    return clean_device_map(std::move(units));
}

DeviceMap move_experts(const ModuleTree& tree, const DeviceMap& map, const std::vector<int>& layers, const Device& device)
{
    const auto blocks = tree.no_split_blocks();
    DeviceMap units = expand_to_units(tree, map);
    std::set<std::string> experts;
    for (int l : layers) {
        if (l < 0 || l >= static_cast<int>(blocks.size()))
            throw PlanError("layer " + std::to_string(l) + " does not exist; the model has layers 0.." +
                            std::to_string(static_cast<int>(blocks.size()) - 1));
        for (int e : tree.experts_under(blocks[static_cast<std::size_t>(l)]))
            experts.insert(tree.nodes()[static_cast<std::size_t>(e)].name);
    }
    for (auto& [k, d] : units)
        if (experts.count(k))
            d = device;
    return in_model_order(tree, clean_device_map(std::move(units)));
}

DeviceMap in_model_order(const ModuleTree& tree, DeviceMap map)
{
    auto position = [&](const std::string& key) {
        const int node = tree.find(key);
        return node >= 0 ? node : tree.find(key.substr(0, key.rfind('.')));
    };
    std::stable_sort(map.begin(), map.end(), [&](const auto& a, const auto& b) { return position(a.first) < position(b.first); });
    return map;
}

} // namespace layerwise
