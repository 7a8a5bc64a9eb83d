#include "plan/accelerate_planner.h"

#include "core/error.h"

#include <algorithm>
#include <deque>
#include <map>
#include <optional>

namespace layerwise {

Strategy parse_strategy(std::string_view text)
{
    if (text == "auto") return Strategy::auto_;
    if (text == "balanced") return Strategy::balanced;
    if (text == "balanced_low_0") return Strategy::balanced_low_0;
    if (text == "sequential") return Strategy::sequential;
    if (text == "custom") return Strategy::custom;
    throw PlanError("unknown strategy '" + std::string(text) + "'; use auto, balanced, balanced_low_0, sequential or custom");
}

std::string_view strategy_name(Strategy s)
{
    switch (s) {
    case Strategy::auto_: return "auto";
    case Strategy::balanced: return "balanced";
    case Strategy::balanced_low_0: return "balanced_low_0";
    case Strategy::sequential: return "sequential";
    case Strategy::custom: return "custom";
    }
    return "?";
}

namespace {

// What accelerate's lists hold: a module, or a tensor (a parameter, when a module is split).
struct Item {
    std::string name;
    int node = -1;                     // module
    const ModuleTensor* tensor = nullptr;
    bool is_module() const { return node >= 0; }
};

// Python's `a in b` for strings.
bool contains(const std::string& haystack, const std::string& needle)
{
    return haystack.find(needle) != std::string::npos;
}

bool starts_with(const std::string& s, const std::string& prefix)
{
    return s.compare(0, prefix.size(), prefix) == 0;
}

class Sizes {
public:
    Sizes(const ModuleTree& tree, SizeRule rule) : m_tree(tree), m_rule(rule), m_module(tree.all_module_bytes(rule))
    {
        for (std::size_t i = 0; i < tree.nodes().size(); ++i)
            m_by_name.emplace(tree.nodes()[i].name, i);
    }
    // module_sizes[name]: a module, a tensor, or 0 (a defaultdict) for anything else.
    std::int64_t of(const Item& item) const
    {
        if (item.is_module())
            return static_cast<std::int64_t>(m_module[static_cast<std::size_t>(item.node)]);
        return static_cast<std::int64_t>(m_tree.tensor_bytes(*item.tensor, m_rule));
    }
    std::int64_t of(const std::string& name) const
    {
        auto it = m_by_name.find(name);
        if (it != m_by_name.end())
            return static_cast<std::int64_t>(m_module[it->second]);
        if (const ModuleTensor* t = m_tree.find_tensor(name))
            return static_cast<std::int64_t>(m_tree.tensor_bytes(*t, m_rule));
        return 0;
    }
    std::int64_t node(int i) const { return static_cast<std::int64_t>(m_module[static_cast<std::size_t>(i)]); }

private:
    const ModuleTree& m_tree;
    SizeRule m_rule;
    std::vector<std::uint64_t> m_module;
    std::map<std::string, std::size_t> m_by_name;
};

std::vector<Item> children_of(const ModuleTree& tree, int node, bool with_parameters)
{
    const ModuleNode& n = tree.nodes()[static_cast<std::size_t>(node)];
    std::vector<Item> out;
    if (with_parameters)
        for (const auto& t : n.tensors)
            if (t.is_parameter())
                out.push_back({t.full_name, -1, &t});
    for (int c : n.children)
        out.push_back({tree.nodes()[static_cast<std::size_t>(c)].name, c, nullptr});
    return out;
}

bool is_no_split(const ModuleTree& tree, int node, bool use_no_split)
{
    return use_no_split && tree.nodes()[static_cast<std::size_t>(node)].no_split;
}

// get_max_layer_size: leaves are modules without children, or no-split modules.
std::pair<std::int64_t, std::vector<std::string>> max_layer_size(const ModuleTree& tree, const std::vector<Item>& items,
                                                                 const Sizes& sizes, bool use_no_split)
{
    std::int64_t max_size = 0;
    std::vector<std::string> names;
    std::deque<Item> todo(items.begin(), items.end());
    while (!todo.empty()) {
        Item item = todo.front();
        todo.pop_front();
        const bool leaf = !item.is_module() || tree.nodes()[static_cast<std::size_t>(item.node)].children.empty() ||
                          is_no_split(tree, item.node, use_no_split);
        if (leaf) {
            const std::int64_t size = sizes.of(item);
            if (size > max_size) {
                max_size = size;
                names = {item.name};
            } else if (size == max_size) {
                names.push_back(item.name);
            }
        } else {
            const auto kids = children_of(tree, item.node, false);
            todo.insert(todo.begin(), kids.begin(), kids.end());
        }
    }
    return {max_size, names};
}

std::vector<Item> modules_only(const std::vector<Item>& items)
{
    std::vector<Item> out;
    for (const auto& i : items)
        if (i.is_module())
            out.push_back(i);
    return out;
}

std::vector<std::vector<std::string>> tied_groups(const ModuleTree& tree)
{
    std::vector<std::vector<std::string>> groups;
    for (const auto& [a, b] : tree.tied()) {
        if (!tree.find_tensor(a) || !tree.find_tensor(b))
            continue;
        std::vector<std::string> g{a, b};
        std::sort(g.begin(), g.end());
        groups.push_back(g);
    }
    return groups;
}

// The devices infer_auto_device_map fills in order: those of max_memory, then the disk.
std::vector<Device> devices_in_order(const MaxMemory& mm)
{
    std::vector<Device> devices;
    for (const auto& l : mm)
        devices.push_back(l.device);
    if (std::none_of(devices.begin(), devices.end(), [](const Device& d) { return d.kind == Device::Kind::disk; }))
        devices.push_back(Device::disk());
    return devices;
}

// The devices that keep room for the largest layer: the first GPU and the CPU (the CPU alone without a GPU).
std::vector<Device> main_devices_of(const std::vector<Device>& devices)
{
    std::vector<Device> gpus;
    for (const auto& d : devices)
        if (d.is_gpu())
            gpus.push_back(d);
    return gpus.empty() ? std::vector<Device>{Device::cpu()} : std::vector<Device>{gpus.front(), Device::cpu()};
}

// Tied parameters with one end inside module `name` and the other outside: the outside ends.
std::vector<std::string> tied_params_outside(const std::vector<std::vector<std::string>>& tied, const std::string& name)
{
    std::vector<std::string> tied_params;
    for (const auto& group : tied) {
        bool any = false, all = true;
        for (const auto& k : group) {
            const bool inside = contains(k + ".", name + ".");
            any = any || inside;
            all = all && inside;
        }
        if (any && !all)
            for (const auto& p : group)
                if (!contains(p + ".", name + "."))
                    tied_params.push_back(p);
    }
    return tied_params;
}

// get_module_size_with_ties: the modules still to place that hold the tied parameters, and the
// module's size with theirs added.
struct TiedModules {
    std::int64_t size_with_ties = 0;
    std::vector<std::string> names;
    std::vector<Item> items;
};

TiedModules modules_with_ties(const std::string& name, std::int64_t module_size, const std::vector<std::string>& tied_params,
                              const std::vector<Item>& todo, const Sizes& sizes)
{
    TiedModules out;
    out.size_with_ties = module_size;
    for (const auto& p : tied_params) {
        auto it = std::find_if(todo.begin(), todo.end(), [&](const Item& i) { return starts_with(p, i.name + "."); });
        if (it == todo.end())
            throw PlanError("cannot place " + name + ": the module holding its tied weight " + p + " was already placed elsewhere");
        if (std::find(out.names.begin(), out.names.end(), it->name) != out.names.end())
            continue;
        out.names.push_back(it->name);
        out.items.push_back(*it);
        out.size_with_ties += sizes.of(*it);
    }
    return out;
}

// A module that fits only without its tied partners: the first splittable partner is replaced
// by its children in `todo`, and `item` goes back to the front. False when none can be split.
bool split_tied_module(const ModuleTree& tree, const Item& item, const std::vector<Item>& tied_modules, std::vector<Item>& todo,
                       bool ns)
{
    for (const Item& tm : tied_modules) {
        if (!tm.is_module())
            throw PlanError("cannot split the tied weight " + tm.name);
        if (tree.nodes()[static_cast<std::size_t>(tm.node)].children.empty() || is_no_split(tree, tm.node, ns))
            continue;
        const auto kids = children_of(tree, tm.node, true);
        auto idx = std::find_if(todo.begin(), todo.end(), [&](const Item& i) { return i.name == tm.name; });
        std::vector<Item> next{item};
        next.insert(next.end(), todo.begin(), idx);
        next.insert(next.end(), kids.begin(), kids.end());
        next.insert(next.end(), idx + 1, todo.end());
        todo = std::move(next);
        return true;
    }
    return false;
}

// Last resort: a module replaced by its direct parameters and children at the front of `todo`.
// False when it has no children or must not be split.
bool split_module(const ModuleTree& tree, const Item& item, std::vector<Item>& todo, bool ns)
{
    const bool splittable = item.is_module() && !tree.nodes()[static_cast<std::size_t>(item.node)].children.empty() &&
                            !is_no_split(tree, item.node, ns);
    if (!splittable)
        return false;
    auto kids = children_of(tree, item.node, true);
    kids.insert(kids.end(), todo.begin(), todo.end());
    todo = std::move(kids);
    return true;
}

} // namespace

MaxMemory accelerate_balanced_memory(const ModuleTree& tree, const MaxMemory& max_memory,
                                     const AccelerateOptions& options, bool low_zero)
{
    MaxMemory mm = ordered(max_memory);
    int num_devices = 0;
    for (const auto& l : mm)
        if (l.device.is_gpu() && l.bytes > 0)
            ++num_devices;
    if (num_devices == 0)
        return mm;
    if (num_devices == 1)
        low_zero = false;

    const Sizes sizes(tree, options.sizes);
    const std::int64_t total = sizes.node(0);
    std::int64_t per_gpu = total / (low_zero ? num_devices - 1 : num_devices);

    // The largest no-split block (all of them: blocks of one class may differ in size) and the
    // largest "leaf": the tensors held directly by one module (not the root), tied copies not counted.
    std::int64_t biggest_block = 0, biggest_leaf = 0;
    for (std::size_t i = 0; i < tree.nodes().size(); ++i) {
        const ModuleNode& n = tree.nodes()[i];
        if (options.no_split && n.no_split)
            biggest_block = std::max(biggest_block, sizes.node(static_cast<int>(i)));
        if (i == 0)
            continue;
        std::int64_t direct = 0;
        bool holds = false;
        for (const auto& t : n.tensors) {
            if (!t.tied_to.empty())
                continue;
            holds = true;
            direct += static_cast<std::int64_t>(tree.tensor_bytes(t, options.sizes));
        }
        if (holds)
            biggest_leaf = std::max(biggest_leaf, direct);
    }
    per_gpu += static_cast<std::int64_t>(1.25 * static_cast<double>(std::max(biggest_block, biggest_leaf)));

    std::vector<int> gpus;
    for (const auto& l : mm)
        if (l.device.is_gpu() && l.bytes > 0)
            gpus.push_back(l.device.index);
    auto limit = [&](int gpu) -> std::int64_t& {
        for (auto& l : mm)
            if (l.device == Device::gpu(gpu))
                return l.bytes;
        throw PlanError("balanced_low_0 needs a limit for GPU " + std::to_string(gpu) + " (transformers numbers the " +
                        std::to_string(num_devices) + " GPUs with a limit 0.." + std::to_string(num_devices - 1) +
                        " and fails otherwise); give every GPU from 0 up a limit");
    };
    for (std::size_t k = 0; k + 1 < gpus.size(); ++k) {
        const int idx = gpus[k];
        limit(idx) = std::min(low_zero && idx == 0 ? limit(0) : per_gpu, limit(idx));
    }
    if (low_zero) {
        std::int64_t others = 0;
        for (int i = 1; i < num_devices; ++i)
            others += limit(i);
        const std::int64_t min_zero = std::max<std::int64_t>(0, total - others);
        limit(0) = std::min(min_zero, limit(0));
    }
    return mm;
}

DeviceMap accelerate_infer_device_map(const ModuleTree& tree, const MaxMemory& max_memory,
                                      const AccelerateOptions& options)
{
    const MaxMemory mm = ordered(max_memory);
    const std::vector<Device> devices = devices_in_order(mm);
    const std::vector<Device> main_devices = main_devices_of(devices);
    const Sizes sizes(tree, options.sizes);
    const auto tied = tied_groups(tree);
    const bool ns = options.no_split;

    std::vector<Item> todo = children_of(tree, 0, true);
    for (const auto& t : tree.root().tensors)
        if (t.buffer)
            todo.push_back({t.full_name, -1, &t});

    DeviceMap device_map;
    std::size_t current = 0;
    std::map<Device, std::int64_t> used;
    auto [max_layer, max_layer_names] = max_layer_size(tree, todo, sizes, ns);

    while (!todo.empty()) {
        Item item = todo.front();
        todo.erase(todo.begin());
        const std::string& name = item.name;
        std::erase_if(max_layer_names, [&](const std::string& n) { return n == name || starts_with(n, name + "."); });
        if (max_layer_names.empty())
            std::tie(max_layer, max_layer_names) = max_layer_size(tree, modules_only(todo), sizes, ns);
        const std::int64_t module_size = sizes.of(item);
        const std::vector<std::string> tied_params = tied_params_outside(tied, name);

        const Device device = devices[current];
        const bool is_disk = device.kind == Device::Kind::disk;
        std::int64_t max_size = 0;
        std::int64_t reserved = 0;
        if (!is_disk) {
            max_size = find_limit(mm, device)->bytes;
            if (std::find(main_devices.begin(), main_devices.end(), device) != main_devices.end()) {
                max_size -= max_layer;
                reserved = max_layer;
            }
        }
        const TiedModules ties = modules_with_ties(name, module_size, tied_params, todo, sizes);

        std::int64_t& used_here = used[device];
        if (is_disk || used_here + ties.size_with_ties <= max_size) {
            used_here += ties.size_with_ties;
            device_map.emplace_back(name, device);
            for (const auto& tn : ties.names) {
                auto it = std::find_if(todo.begin(), todo.end(), [&](const Item& i) { return i.name == tn; });
                if (it != todo.end())
                    todo.erase(it);
                device_map.emplace_back(tn, device);
            }
            continue;
        }
        if ((!tied_params.empty() && used_here + module_size <= max_size && split_tied_module(tree, item, ties.items, todo, ns)) ||
            split_module(tree, item, todo, ns)) {
            std::tie(max_layer, max_layer_names) = max_layer_size(tree, modules_only(todo), sizes, ns);
            continue;
        }

        // Nothing more fits here: keep room for the largest layer and move to the next device.
        used_here += reserved;
        ++current;
        todo.insert(todo.begin(), item);
    }
    return clean_device_map(std::move(device_map));
}

DeviceMap accelerate_device_map(const ModuleTree& tree, const MaxMemory& max_memory, Strategy strategy,
                                const AccelerateOptions& options)
{
    if (strategy == Strategy::custom)
        throw PlanError("a custom map is given, not inferred");
    const MaxMemory mm = strategy == Strategy::sequential
                             ? ordered(max_memory)
                             : accelerate_balanced_memory(tree, max_memory, options, strategy == Strategy::balanced_low_0);
    return accelerate_infer_device_map(tree, mm, options);
}

} // namespace layerwise
