#pragma once
// The pages of the quantization wizard (private to its sources). Each page owns its widgets,
// writes what the user sets into the shared QuantizeWizardState and renders what the state
// reports; what the wizard must do (a preview, a run, an evaluation) it asks through signals.
#include <QWizardPage>

class QCheckBox;
class QComboBox;
class QDoubleSpinBox;
class QFormLayout;
class QLabel;
class QLineEdit;
class QProgressBar;
class QPushButton;
class QRadioButton;
class QSpinBox;
class QVBoxLayout;

namespace layerwise::ui {

class QuantizeWizardState;

class QuantizeMethodPage : public QWizardPage {
    Q_OBJECT
public:
    QuantizeMethodPage(QuantizeWizardState* state, QWidget* parent);
    bool isComplete() const override;

private:
    void choose(const QString& method);
    QuantizeWizardState* m_state;
    QLabel* m_text = nullptr;
};

class QuantizeParametersPage : public QWizardPage {
    Q_OBJECT
public:
    QuantizeParametersPage(QuantizeWizardState* state, QWidget* parent);
    void initializePage() override;
    bool validatePage() override; // the new folder must not exist
    // The interrupted GPTQ run of the chosen folder, if any; when it is resumed, its settings
    // are filled in (resuming needs the same ones).
    void showPartialRun();

Q_SIGNALS:
    // The size preview depends on a field that changed (or the page is shown).
    void previewWanted();

private:
    QWidget* createBitsandbytesOptions();
    QWidget* createGptqOptions();
    void addGptqRow(QFormLayout* form, const QString& label, QWidget* field, const QString& help);
    void createOutputRow(QVBoxLayout* layout);
    void createPartialRunNotice(QVBoxLayout* layout);
    void connectFields();
    void store(); // the fields into the shared state
    void usePartialSettings();
    void showPreview();

    QuantizeWizardState* m_state;
    QLabel* m_text = nullptr;
    QWidget* m_bnbOptions = nullptr;
    QCheckBox* m_doubleQuant = nullptr;
    QComboBox* m_computeDtype = nullptr;
    QLineEdit* m_skipModules = nullptr;
    QWidget* m_gptqOptions = nullptr;
    QComboBox* m_bits = nullptr;
    QComboBox* m_groupSize = nullptr;
    QCheckBox* m_descAct = nullptr;
    QCheckBox* m_sym = nullptr;
    QDoubleSpinBox* m_damp = nullptr;
    QSpinBox* m_samples = nullptr;
    QSpinBox* m_seqLen = nullptr;
    QLabel* m_size = nullptr;
    QLabel* m_verdict = nullptr;
    QLineEdit* m_output = nullptr;
    QLabel* m_outputError = nullptr;
    QLabel* m_partialText = nullptr;
    QCheckBox* m_resume = nullptr;
    bool m_outputSuggested = false; // the folder shown is the suggestion, not the user's own choice
};

class QuantizeCalibrationPage : public QWizardPage {
    Q_OBJECT
public:
    QuantizeCalibrationPage(QuantizeWizardState* state, QWidget* parent);
    void initializePage() override;
    bool isComplete() const override;

private:
    void store();
    QuantizeWizardState* m_state;
    QRadioButton* m_default = nullptr;
    QRadioButton* m_file = nullptr;
    QLineEdit* m_path = nullptr;
    QLabel* m_summary = nullptr;
};

class QuantizeRunPage : public QWizardPage {
    Q_OBJECT
public:
    QuantizeRunPage(QuantizeWizardState* state, QWidget* parent);
    void initializePage() override; // starts the job
    void cleanupPage() override;    // Back cancels it
    bool isComplete() const override;

Q_SIGNALS:
    void runRequested();
    void cancelRequested();

private:
    void showStart();
    void showCancelling();
    void showProgress();
    void showFinished(bool ok);
    void showSucceeded();
    void showFailed();
    QuantizeWizardState* m_state;
    QProgressBar* m_bar = nullptr;
    QLabel* m_item = nullptr;
    QLabel* m_error = nullptr;
    QLabel* m_eta = nullptr;
    QLabel* m_status = nullptr;
    QLabel* m_resume = nullptr;
    QPushButton* m_cancel = nullptr;
};

class QuantizeEvaluatePage : public QWizardPage {
    Q_OBJECT
public:
    QuantizeEvaluatePage(QuantizeWizardState* state, QWidget* parent);
    void initializePage() override;
    bool isComplete() const override;

Q_SIGNALS:
    void evaluationRequested();

private:
    void createTextChoice(QVBoxLayout* layout);
    void store();
    void showStarted();
    void showProgress(bool after, int done, int total);
    void showFinished(bool ok);
    void showMissingText();
    QuantizeWizardState* m_state;
    QRadioButton* m_default = nullptr;
    QRadioButton* m_file = nullptr;
    QLineEdit* m_path = nullptr;
    QSpinBox* m_context = nullptr;
    QSpinBox* m_stride = nullptr;
    QPushButton* m_button = nullptr;
    QProgressBar* m_bar = nullptr;
    QLabel* m_result = nullptr;
};

class QuantizeDonePage : public QWizardPage {
    Q_OBJECT
public:
    QuantizeDonePage(QuantizeWizardState* state, QWidget* parent);
    void initializePage() override;

Q_SIGNALS:
    void openRequested();

private:
    QuantizeWizardState* m_state;
    QLabel* m_text = nullptr;
};

} // namespace layerwise::ui
