#pragma once
// Where tests find their data: the shared real models (LAYERWISE_TEST_DATA) and the
// committed reference fixtures (LAYERWISE_FIXTURES). Missing data fails loudly.
#include <QtTest>

#include <cctype>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace layerwise::test {

inline std::filesystem::path env_dir(const char* name)
{
    const QByteArray v = qgetenv(name);
    if (v.isEmpty())
        qFatal("%s is not set; run the tests through ctest", name);
    std::filesystem::path p(v.toStdString());
    if (!std::filesystem::is_directory(p))
        qFatal("%s=%s is not a folder: the test data is missing", name, v.constData());
    return p;
}

inline std::filesystem::path shared_data() { return env_dir("LAYERWISE_TEST_DATA"); }
inline std::filesystem::path fixtures() { return env_dir("LAYERWISE_FIXTURES"); }

// The default chat model (SmolLM2-135M-Instruct GGUF) that packaging/setup.sh installs and
// records in .venv/default_model.txt; empty when it is not installed.
inline std::filesystem::path default_chat_model()
{
    const QByteArray venv = qgetenv("LAYERWISE_VENV");
    std::ifstream recorded(std::filesystem::path(venv.toStdString()) / "default_model.txt");
    std::string path;
    if (venv.isEmpty() || !recorded || !std::getline(recorded, path) || !std::filesystem::is_regular_file(path))
        return {};
    return path;
}

// Bytes of `file` mapped into this process and present in its page tables (the Rss of its
// mappings in /proc/self/smaps): what a first use of those pages will not have to fault in.
inline std::uint64_t mapped_rss_bytes(const std::filesystem::path& file)
{
    const std::string target = std::filesystem::canonical(file).string();
    std::ifstream smaps("/proc/self/smaps");
    std::string line;
    bool inside = false;
    std::uint64_t rss = 0;
    while (std::getline(smaps, line)) {
        // A mapping's first line: "start-end perms offset dev inode path".
        const std::size_t dash = line.find('-'), space = line.find(' ');
        const bool header = !line.empty() && std::isxdigit(static_cast<unsigned char>(line[0])) && dash < space &&
                            space != std::string::npos;
        if (header) {
            inside = line.size() >= target.size() && line.compare(line.size() - target.size(), target.size(), target) == 0;
        } else if (inside && line.rfind("Rss:", 0) == 0) {
            rss += std::stoull(line.substr(4)) * 1024; // "Rss:   1234 kB"
        }
    }
    return rss;
}

inline std::string read_file(const std::filesystem::path& p)
{
    std::ifstream in(p, std::ios::binary);
    if (!in)
        qFatal("cannot read %s", p.c_str());
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

inline nlohmann::json read_json(const std::filesystem::path& p)
{
    return nlohmann::json::parse(read_file(p));
}

inline void write_file(const std::filesystem::path& p, const std::string& bytes)
{
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << bytes;
}

// A fresh temporary folder removed at scope exit.
class TempDir {
public:
    TempDir()
    {
        char tmpl[] = "/tmp/layerwise-test-XXXXXX";
        m_path = mkdtemp(tmpl);
    }
    ~TempDir()
    {
        std::error_code ec;
        std::filesystem::permissions(m_path, std::filesystem::perms::owner_all, ec);
        std::filesystem::remove_all(m_path, ec);
    }
    const std::filesystem::path& path() const { return m_path; }

private:
    std::filesystem::path m_path;
};

// Runs `f`, expecting an exception of type E whose message contains every needle.
template <typename E, typename F>
bool throws_with(F&& f, std::initializer_list<const char*> needles, QString* message = nullptr)
{
    try {
        f();
    } catch (const E& e) {
        const QString what = QString::fromUtf8(e.what());
        if (message)
            *message = what;
        for (const char* n : needles)
            if (!what.contains(QString::fromUtf8(n))) {
                qWarning("message lacks '%s': %s", n, e.what());
                return false;
            }
        return true;
    } catch (const std::exception& e) {
        qWarning("wrong exception type: %s", e.what());
        return false;
    }
    qWarning("no exception thrown");
    return false;
}

} // namespace layerwise::test
