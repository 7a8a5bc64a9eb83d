#pragma once
// The quantization wizard: Method → Parameters (what each one does, the size the model will
// have and whether it fits the devices of the current plan, the new folder; GPTQ: bits, group
// size, act-order, symmetry, damping, calibration samples and length) → Calibration data (GPTQ
// only) → Run (progress per tensor, or per layer and module for GPTQ, ETA, Cancel: nothing
// half-written; an interrupted GPTQ run resumes from `<out>.partial`) → Evaluation (perplexity
// before and after on a text) → Done ("Open it" loads the new folder).
// Every job runs on the engine worker's thread through queued signals; the GUI never waits.
#include "enginework.h"
#include "quantwork.h"

#include <QWizard>

class QCheckBox;
class QComboBox;
class QDoubleSpinBox;
class QLabel;
class QLineEdit;
class QProgressBar;
class QPushButton;
class QRadioButton;
class QSpinBox;

namespace layerwise::ui {

class EngineWorker;

// One quantization method as the Method page lists it. A method whose engine is missing is
// listed disabled, with the reason as its tooltip.
struct QuantMethodInfo {
    QString id;          // "int8", "nf4", "fp4", "gptq"
    QString label;
    QString explanation;
    bool available = true;
    QString unavailableReason;
    bool fourBit = false;         // double quantization and the compute dtype apply
    bool needsCalibration = false; // GPTQ
};
QVector<QuantMethodInfo> quantMethods();

class QuantizeWizard : public QWizard {
    Q_OBJECT
public:
    enum PageId { MethodPage, ParametersPage, CalibrationPage, RunPage, EvaluatePage, DonePage };
    // `source`: the model folder; `settings`: the main window's plan settings (devices, limits,
    // context) the size and verdict are judged with; `calibration`: the default text file ("" when none).
    QuantizeWizard(EngineWorker* worker, const QString& source, const PlanSettings& settings, const QString& calibration,
                   QWidget* parent = nullptr);
    ~QuantizeWizard() override;

    QString source() const { return m_source; }
    QString calibrationDefault() const { return m_calibration; }
    QString method() const;
    const QuantMethodInfo& methodInfo() const;
    // The request the Run page sends (from the pages' fields).
    QuantizeRequest request() const;
    bool isRunning() const { return m_running; }
    QString resultFolder() const { return m_result.folder; }
    const QuantizeResultView& result() const { return m_result; }
    const QuantizeProgressView& lastProgress() const { return m_progress; }
    QString runMessage() const;
    const PlanView& previewOriginal() const { return m_planOriginal; }
    const PlanView& previewQuantized() const { return m_planQuantized; }
    double perplexityBefore() const { return m_before.perplexity; }
    double perplexityAfter() const { return m_after.perplexity; }
    // The text the Evaluation page measures perplexity on ("" when none is chosen).
    QString evaluationText() const;
    // A folder next to the source that does not exist yet ("<source>-int8", "-int8-2", ...).
    static QString suggestFolder(const QString& source, const QString& method);
    // GPTQ: the interrupted run of the chosen folder (`<out>.partial`; folder "" when none).
    GptqPartialRun partialRun() const;

    int nextId() const override;
    void reject() override;

    // Page actions (the buttons call them; tests too).
    void cancelRun();
    void evaluate();
    void openResult();

Q_SIGNALS:
    void requestPreview(const layerwise::ui::PlanSettings& settings, const QString& tag);
    void requestQuantize(const layerwise::ui::QuantizeRequest& request);
    void requestEvaluate(const layerwise::ui::EvalRequest& request);
    void previewShown();
    void runFinished(bool ok);
    void evaluationFinished(bool ok);
    // "Open it": the main window opens and loads the folder.
    void openRequested(const QString& folder);

private:
    friend class QuantizeMethodPage;
    friend class QuantizeParametersPage;
    friend class QuantizeCalibrationPage;
    friend class QuantizeRunPage;
    friend class QuantizeEvaluatePage;
    friend class QuantizeDonePage;
    void startRun();
    void updatePreview();
    void onPreview(const QString& tag, const PlanView& plan);
    void onProgress(const QuantizeProgressView& progress);
    void onQuantized(const QuantizeResultView& result);
    void onQuantizeFailed(const QString& message, bool cancelled);
    void onEvalProgress(const QString& tag, int done, int total);
    void onEvaluated(const EvalResultView& result);
    void onEvalFailed(const QString& tag, const QString& message, bool cancelled);
    void showPreview();
    void showEvaluation();
    void showPartialRun();
    void usePartialSettings();

    EngineWorker* m_worker;
    QString m_source;
    PlanSettings m_settings;
    QString m_calibration;
    int m_maxPositions = 0; // the source's max_position_embeddings (0: unknown)
    QVector<QuantMethodInfo> m_methods;
    QString m_tagPrefix;
    int m_previewSerial = 0;
    PlanView m_planOriginal, m_planQuantized;
    bool m_running = false;
    bool m_runOk = false;
    QString m_runMessage;
    QuantizeProgressView m_progress;
    QuantizeResultView m_result;
    EvalResultView m_before, m_after;
    QString m_evalMessage;
    int m_evalPending = 0;

    // Method page
    QVector<QRadioButton*> m_methodButtons;
    QLabel* m_methodText = nullptr;
    // Parameters page
    QLabel* m_paramText = nullptr;
    QCheckBox* m_doubleQuant = nullptr;
    QComboBox* m_computeDtype = nullptr;
    QLineEdit* m_skipModules = nullptr;
    QWidget* m_bnbOptions = nullptr;
    QWidget* m_gptqOptions = nullptr;
    QComboBox* m_bits = nullptr;
    QComboBox* m_groupSize = nullptr;
    QCheckBox* m_descAct = nullptr;
    QCheckBox* m_sym = nullptr;
    QDoubleSpinBox* m_damp = nullptr;
    QSpinBox* m_samples = nullptr;
    QSpinBox* m_seqLen = nullptr;
    QLabel* m_partialText = nullptr;
    QCheckBox* m_resume = nullptr;
    QLabel* m_size = nullptr;
    QLabel* m_verdict = nullptr;
    QLineEdit* m_output = nullptr;
    QLabel* m_outputError = nullptr;
    // Calibration page
    QRadioButton* m_calibDefault = nullptr;
    QRadioButton* m_calibFile = nullptr;
    QLineEdit* m_calibPath = nullptr;
    QLabel* m_calibSummary = nullptr;
    // Run page
    QProgressBar* m_runBar = nullptr;
    QLabel* m_runItem = nullptr;
    QLabel* m_runError = nullptr;
    QLabel* m_runEta = nullptr;
    QLabel* m_runStatus = nullptr;
    QLabel* m_runResume = nullptr;
    QPushButton* m_cancel = nullptr;
    // Evaluation page
    QRadioButton* m_evalDefault = nullptr;
    QRadioButton* m_evalFile = nullptr;
    QLineEdit* m_evalPath = nullptr;
    QSpinBox* m_evalContext = nullptr;
    QSpinBox* m_evalStride = nullptr;
    QPushButton* m_evalButton = nullptr;
    QProgressBar* m_evalBar = nullptr;
    QLabel* m_evalResult = nullptr;
    // Done page
    QLabel* m_doneText = nullptr;
    QPushButton* m_open = nullptr;
};

} // namespace layerwise::ui
