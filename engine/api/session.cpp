#include "api/session.h"

#include "api/batch_state.h"
#include "api/footprint.h"
#include "api/model_access.h"
#include "core/error.h"
#include "plan/device_map.h"
#include "plan/pipeline.h"
#include "remote/stage_link.h"
#include "remote/wire.h"
#include "runtime/chat.h"
#include "runtime/loaded_model.h"
#include "runtime/perplexity.h"
#include "runtime/runner.h"
#include "runtime/session.h"
#include "text/tokenizer.h"

#include <ATen/Parallel.h>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>

namespace layerwise {

struct Session::State {
    std::unique_ptr<LoadedModel> model;
    // With a tokenizer the chat session owns the runner (one KV cache); without, a bare runner.
    std::unique_ptr<ChatSession> chat;
    std::unique_ptr<Runner> runner;
    std::vector<std::int64_t> model_eos;
    // Calls from several threads (the GUI's chat and the local server) take turns.
    mutable std::recursive_mutex mutex;
    std::set<const SequenceBatch*> batches; // live batches, whose caches the footprint counts
    std::vector<std::unique_ptr<remote::StageClient>> links; // the pipeline's workers, one per remote stage

    Runner& run() { return chat ? chat->runner() : *runner; }
    const Runner& run() const { return chat ? const_cast<ChatSession&>(*chat).runner() : *runner; }
    ChatSession& chat_session() const
    {
        if (!chat)
            throw UnsupportedError("this model has no tokenizer to chat with: give token ids (generate --ids) or add its "
                                   "tokenizer.json to the model folder");
        return *chat;
    }
};

Session::Session(std::unique_ptr<State> state) : m_state(std::move(state)) {}
Session::~Session()
{
    if (m_state)
        m_state->chat.reset(); // the chat session refers to the model: it goes first
}

std::unique_ptr<Session> Session::load(Model&& model, const SessionOptions& options)
{
    ModelDescription& d = ModelAccess::description(model);
    if (!d.checkpoint)
        throw UnsupportedError("'" + d.source + "' has no weights to load: it describes a model's shape (a preset, a "
                               "config.json or a folder without weights). Open a model folder with a checkpoint to load it.");
    auto state = std::make_unique<State>();
    state->model_eos = eos_token_ids(d.checkpoint->folder(), d.config);
    const std::vector<int> blocks = d.tree.no_split_blocks();
    DeviceMap map = options.device_map;
    for (const RemoteStage& stage : options.remote_stages) {
        // Join every worker first (a wrong token or an unreachable host fails before any loading),
        // then have it load its layers from its own copy while this machine loads the rest; the
        // remote layers' weights here stay mapped on disk, never read.
        if (stage.first < 0 || stage.end <= stage.first || stage.end > static_cast<std::int64_t>(blocks.size()))
            throw PlanError("remote stage " + stage.address + ": layers " + std::to_string(stage.first) + "-" + std::to_string(stage.end - 1) +
                            " are not layers of this model (" + std::to_string(blocks.size()) + " decoder layers)");
        state->links.push_back(std::make_unique<remote::StageClient>(stage.address, options.remote_token, options.remote_timeout));
        for (std::int64_t l = stage.first; l < stage.end; ++l)
            map = move_module(d.tree, map, d.tree.nodes()[static_cast<std::size_t>(blocks[static_cast<std::size_t>(l)])].name, Device::disk());
    }
    // Every worker loads its stage while this machine loads its own; then each answer is awaited,
    // the progress callback still asked whether to go on.
    std::vector<std::int64_t> loading;
    for (std::size_t i = 0; i < options.remote_stages.size(); ++i) {
        const RemoteStage& stage = options.remote_stages[i];
        nlohmann::json load{{"op", "load"}, {"model", std::filesystem::absolute(d.source).string()}, {"first", stage.first},
                            {"end", stage.end}, {"layers", blocks.size()}, {"context", options.context}};
        if (options.dtype)
            load["dtype"] = std::string(torch_name(*options.dtype));
        if (!stage.device_map.empty())
            load["map"] = device_map_to_json(stage.device_map);
        loading.push_back(state->links[i]->post({load, {}}));
    }
    LoadOptions load;
    load.dtype = options.dtype;
    load.device_map = map;
    load.offload_folder = options.offload_folder;
    load.quant = options.quant;
    load.gguf_decode = options.gguf_decode;
    Progress last;
    load.progress = [&](const Progress& p) {
        last = p;
        return !options.progress || options.progress(p);
    };
    load.log = options.log;
    state->model = load_model(std::move(d), load);
    for (std::size_t i = 0; i < options.remote_stages.size(); ++i) {
        const RemoteStage& stage = options.remote_stages[i];
        last.item = "layers " + std::to_string(stage.first) + "-" + std::to_string(stage.end - 1) + " on " + stage.address;
        state->links[i]->await(loading[i], std::max(options.remote_timeout, std::chrono::milliseconds(std::chrono::minutes(10))),
                               [&] { return !options.progress || options.progress(last); });
    }
    for (std::size_t i = 0; i < options.remote_stages.size(); ++i) {
        remote::StageClient* link = state->links[i].get();
        LoadedModel::RemoteLayers r;
        r.begin = static_cast<std::size_t>(options.remote_stages[i].first);
        r.end = static_cast<std::size_t>(options.remote_stages[i].end);
        r.where = link->address();
        r.forward = [link](const at::Tensor& hidden, std::int64_t start, std::int64_t sequence) {
            remote::Message m = remote::tensor_to_wire(hidden);
            m.header["op"] = "forward";
            m.header["start"] = start;
            if (sequence != 0)
                m.header["sequence"] = sequence;
            return remote::tensor_from_wire(link->call(m));
        };
        r.post_rows = [link](const at::Tensor& hidden, const std::vector<std::int64_t>& sequences, const std::vector<std::int64_t>& starts) {
            remote::Message m = remote::tensor_to_wire(hidden);
            m.header["op"] = "forward_rows";
            m.header["sequences"] = sequences;
            m.header["starts"] = starts;
            return link->post(m);
        };
        r.await_rows = [link](std::int64_t ticket) { return remote::tensor_from_wire(link->await(ticket)); };
        r.forward_rows = [post = r.post_rows, wait = r.await_rows](const at::Tensor& hidden, const std::vector<std::int64_t>& sequences,
                                                                   const std::vector<std::int64_t>& starts) {
            return wait(post(hidden, sequences, starts));
        };
        state->model->remote.push_back(std::move(r));
    }
    try {
        state->chat = std::make_unique<ChatSession>(*state->model, options.context, options.log);
    } catch (const Error&) {
        if (options.require_tokenizer)
            throw;
        state->runner = std::make_unique<Runner>(*state->model, options.context);
    }
    state->model->on_layer_state = options.on_layer_state;
    state->model->micro_batches = options.micro_batches;
    return std::unique_ptr<Session>(new Session(std::move(state)));
}

void use_pipeline(const Model& model, const PipelinePlan& plan, SessionOptions& options)
{
    options.remote_stages.clear();
    for (const PipelineStage& s : plan.stages) {
        if (const Machine* m = plan.machine_of(s))
            options.remote_stages.push_back({m->address, s.first, s.end, s.plan.device_map});
        else
            options.device_map = whole_model_map(model.tree(), s.plan.device_map, s.first, s.end, true);
    }
}

GenerationResult Session::generate(const std::vector<std::int64_t>& prompt, const GenerationOptions& options,
                                   const std::function<bool(std::int64_t)>& on_token, const std::atomic<bool>* stop)
{
    std::lock_guard lock(m_state->mutex);
    if (m_state->chat)
        m_state->chat->reset();
    Runner& runner = m_state->run();
    runner.reset();
    std::function<std::string(const std::vector<std::int64_t>&)> decode;
    if (m_state->chat && !options.stop_strings.empty())
        decode = [tok = &m_state->chat->tokenizer()](const std::vector<std::int64_t>& ids) {
            return tok->decode(std::vector<text::TokenId>(ids.begin(), ids.end()), true);
        };
    return layerwise::generate(runner, prompt, options, on_token, stop, decode);
}

ChatAnswer Session::chat(const Conversation& conversation, GenerationOptions options,
                         const std::function<bool(std::string_view)>& on_text, const std::atomic<bool>* stop,
                         const std::function<bool(std::string_view)>& on_reasoning)
{
    std::lock_guard lock(m_state->mutex);
    ChatSession& chat = m_state->chat_session(); // eos_ids empty: reply() uses the model's and the template's
    try {
        return chat.reply(conversation, options, on_text, stop, on_reasoning);
    } catch (...) {
        chat.reset(); // a failed turn leaves no half-written cache behind
        throw;
    }
}

std::string Session::prompt_text(const Conversation& conversation) const
{
    std::lock_guard lock(m_state->mutex);
    return m_state->chat_session().prompt_text(conversation);
}

std::vector<std::int64_t> Session::prompt_ids(const Conversation& conversation) const
{
    std::lock_guard lock(m_state->mutex);
    return m_state->chat_session().prompt_ids(conversation);
}

bool Session::has_template() const { return m_state->chat && m_state->chat->has_template(); }

void Session::reset()
{
    std::lock_guard lock(m_state->mutex);
    if (m_state->chat)
        m_state->chat->reset();
    else
        m_state->runner->reset();
}

PerplexityResult Session::perplexity(const std::vector<std::int64_t>& ids, std::int64_t context, std::int64_t stride,
                                     const ProgressCallback& progress)
{
    std::lock_guard lock(m_state->mutex);
    if (m_state->chat)
        m_state->chat->reset();
    return evaluate_perplexity(m_state->run(), ids, context, stride, progress);
}

const ModelConfig& Session::config() const { return m_state->model->config; }
const text::Tokenizer* Session::tokenizer() const { return m_state->chat ? &m_state->chat->tokenizer() : nullptr; }
std::vector<std::int64_t> Session::eos_ids() const { return m_state->chat ? m_state->chat->eos_ids() : m_state->model_eos; }
std::int64_t Session::context_length() const { return m_state->run().capacity(); }
DType Session::dtype() const { return m_state->model->dtype; }
nlohmann::json Session::hf_device_map() const { return m_state->model->hf_device_map(); }

std::vector<Device> Session::layer_devices() const
{
    std::vector<Device> out;
    for (const auto& layer : m_state->model->layers)
        out.push_back(layer.home);
    return out;
}

namespace {

Device device_of_tensor(const at::Tensor& t)
{
    return t.is_cuda() ? Device::gpu(t.device().index()) : Device::cpu();
}

} // namespace

std::vector<LoadedFootprint> model_footprint(const LoadedModel& m, const std::vector<const KvCache*>& caches, bool with_globals)
{
    std::map<Device, LoadedFootprint> by_device;
    std::set<const void*> counted; // tied weights share storage: count it once
    const auto add = [&](const Device& device, const at::Tensor& t) {
        LoadedFootprint& f = by_device[device];
        f.device = device;
        if (t.defined() && counted.insert(t.storage().data()).second)
            f.weight_bytes += t.nbytes();
    };
    for (const auto& [name, t] : m.globals) {
        if (!with_globals)
            break;
        const Device* planned = device_of(m.device_map, name);
        add(planned && planned->kind == Device::Kind::disk ? *planned : device_of_tensor(t), t);
    }
    for (std::size_t l = 0; l < m.layers.size(); ++l) {
        if (std::any_of(m.remote.begin(), m.remote.end(), [&](const LoadedModel::RemoteLayers& r) { return l >= r.begin && l < r.end; }))
            continue; // held by another machine
        const auto& layer = m.layers[l];
        by_device[layer.home].device = layer.home;
        ++by_device[layer.home].layers;
        for (const auto& [name, t] : layer.tensors)
            add(layer.home, t);
    }
    for (const KvCache* cache : caches)
        for (std::size_t i = 0; i < cache->k.size(); ++i)
            for (const at::Tensor* t : {&cache->k[i], &cache->v[i]})
                if (t->defined()) {
                    LoadedFootprint& f = by_device[device_of_tensor(*t)];
                    f.device = device_of_tensor(*t);
                    f.kv_cache_bytes += t->nbytes();
                }
    std::vector<LoadedFootprint> out;
    for (auto& [device, f] : by_device)
        out.push_back(f);
    return out;
}

std::vector<LoadedFootprint> Session::footprint() const
{
    std::lock_guard lock(m_state->mutex);
    std::vector<const KvCache*> caches{&const_cast<Runner&>(m_state->run()).cache()};
    for (const SequenceBatch* batch : m_state->batches)
        for (const KvCache* c : batch->own_caches())
            caches.push_back(c);
    std::vector<LoadedFootprint> out = model_footprint(*m_state->model, caches);
    // Each worker's own share, as it reports it.
    for (const auto& link : m_state->links) {
        const remote::Message m = link->call({{{"op", "footprint"}}, {}});
        try {
            for (const auto& j : m.header.at("devices")) {
                LoadedFootprint f;
                f.machine = link->address();
                f.device = parse_device(j.at("device").get<std::string>());
                f.weight_bytes = j.at("weight_bytes").get<std::uint64_t>();
                f.kv_cache_bytes = j.at("kv_cache_bytes").get<std::uint64_t>();
                f.layers = j.at("layers").get<int>();
                out.push_back(f);
            }
        } catch (const nlohmann::json::exception& e) {
            throw RemoteError("the worker at " + link->address() + " described what it holds wrongly: " + e.what(), link->address());
        }
    }
    return out;
}

std::unique_ptr<Batch> Session::batch(std::size_t slots)
{
    std::lock_guard lock(m_state->mutex);
    auto state = std::make_unique<Batch::State>(m_state->mutex, m_state->run(), slots);
    const SequenceBatch* registered = &state->batch;
    m_state->batches.insert(registered);
    state->unregister = [session = m_state.get(), registered] { session->batches.erase(registered); };
    return std::unique_ptr<Batch>(new Batch(std::move(state)));
}

void Session::set_prefetch(bool on)
{
    std::lock_guard lock(m_state->mutex);
    m_state->run().set_prefetch(on);
}
bool Session::prefetching() const { return m_state->run().prefetching(); }

void set_cpu_threads(int threads)
{
    at::set_num_threads(threads > 0 ? threads : usable_cpu_count());
}

int cpu_threads() { return at::get_num_threads(); }

} // namespace layerwise
